"""The data a trial trains on: bundled and project tables, dated series cut into date-range folds."""
