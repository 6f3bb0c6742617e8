"""Our twin of each case of Hydra's Optuna sweeper's test suite, written in our own words."""
