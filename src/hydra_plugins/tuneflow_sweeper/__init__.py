"""tuneflow's Hydra sweeper: Optuna drives the multirun, trials report back and get pruned."""
