"""tuneflow: hyperparameter tuning on Hydra + Optuna + MLflow.

Run ``python -m tuneflow +arch=mlp -m`` to tune an architecture with its default search space, or add
``override hydra/sweeper: tuneflow`` to any Hydra app. Inside a trial, a training loop calls:

>>> import tuneflow
>>> tuneflow.report(1, {"val_loss": 0.5})   # step metrics to MLflow, the objective to the pruner
>>> tuneflow.current_trial() is None        # outside a sweep: no trial, and nothing else changes
True
"""

from __future__ import annotations

from optuna import TrialPruned

from tuneflow.models.base import TrainResult
from tuneflow.trial.api import Trial, current_trial, log_model, mlflow_run, report

__version__ = "0.1.0"
__all__ = ["TrainResult", "Trial", "TrialPruned", "__version__", "current_trial", "log_model", "mlflow_run", "report"]
