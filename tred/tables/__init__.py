"""Paper-style tables of a sweep directory, one step per module:

- `tred.tables.runs`: the run directories read into one frame (result.json, config.yaml), the
  checks that refuse a directory that cannot give an honest table, and the expected grid the
  sweep declared in its multirun.yaml;
- `tred.tables.stats`: paired differences by seed with a Student-t interval (no scipy);
- `tred.tables.table`: `build_table`: cells, averages, gains and the paired differences;
- `tred.tables.render`: markdown, LaTeX, the csv / W&B frame and the notes under a table.

Method names, display names and the paper's order come from `tred.methods`.
"""
