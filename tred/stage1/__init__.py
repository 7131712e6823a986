"""Stage 1: work done once on the frozen source network before fine-tuning, and cached.

- `channel_attention`: DELTA's channel weights (used by `delta`, and by `tred` with
  `channel_weights: attention`);
- `disentangler` (the model), `disentangle` (its training and diagnostics, docs/tred.md) and
  `stage` (`run_stage1`: cached, logged, saved in the run directory): TRED's stage 1;
- `estimators`: MMD^2 and the CLUB mutual-information bound it separates the parts with.

Regularizers call stage 1; stage 1 never imports `tred.regularizers`. Every function takes its
inputs explicitly (the source network, the data, its own settings), never the run config.
"""
