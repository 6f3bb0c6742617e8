"""tuneflow: hyperparameter tuning on Hydra + Optuna + MLflow.

Run ``python -m tuneflow +arch=mlp -m`` to tune an architecture with its default search space.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
