"""TRED stage 1: split each TRED layer's source feature map into a target-relevant part z_r and an
irrelevant part z_i (see tred/disentangle/train.py for the losses, docs/tred.md for the recipe).

`run_stage1(ctx, layers)` is what the `tred` regularizer calls; `train_disentangler` and
`Disentangler` can be used on their own. The CLUB estimator lives in tred/regularizers/functional.py.
"""

from tred.disentangle.model import Disentangler, LayerDisentangler
from tred.disentangle.stage import run_stage1
from tred.disentangle.train import METHODS, evaluate_stage1, train_disentangler

__all__ = ["Disentangler", "LayerDisentangler", "METHODS", "evaluate_stage1", "run_stage1", "train_disentangler"]
