"""What is recorded: MLflow runs (one parent per study, one child per trial, batched writes, models
through their flavors) and the trials CSV."""
