"""An LSTM with structured self-attention that forecasts the next day from a window of past days.

The attention is Lin et al. (2017), "A Structured Self-Attentive Sentence Embedding": over the LSTM
states ``H`` (window x hidden) it computes ``r`` attention hops ``A = softmax(W2 tanh(W1 Hᵀ))``
(r x window), pools ``M = A H`` and reads the forecast off ``M`` with a linear head. The penalty
``||A Aᵀ - I||²_F`` pushes the hops to look at different days; ``attention_regularization`` weighs it.

One call trains on one fold (:class:`tuneflow.data.timeseries.SeriesData`); the runner loops over folds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from tuneflow.data.timeseries import SeriesData
from tuneflow.models import _torch
from tuneflow.models.base import Reporter, TrainResult


class StructuredSelfAttention(nn.Module):
    """``r`` attention hops over a sequence of states, with Lin et al.'s redundancy penalty."""

    def __init__(self, state_size: int, hidden_size: int, hops: int):
        super().__init__()
        self.w1 = nn.Linear(state_size, hidden_size, bias=False)  # W_s1: d_a x u
        self.w2 = nn.Linear(hidden_size, hops, bias=False)  # W_s2: r x d_a

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``states`` (B, T, u) -> pooled (B, r, u) and attention weights ``A`` (B, r, T)."""
        weights = torch.softmax(self.w2(torch.tanh(self.w1(states))).transpose(1, 2), dim=-1)
        return weights @ states, weights

    @staticmethod
    def penalty(weights: torch.Tensor) -> torch.Tensor:
        """``||A Aᵀ - I||²_F``, averaged over the batch."""
        gram = weights @ weights.transpose(1, 2)
        identity = torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)
        return (gram - identity).pow(2).sum(dim=(1, 2)).mean()


class LSTMAttention(nn.Module):
    """(B, window, F) -> (B,) standardised next-day target.

    ``forward`` records the attention penalty of its last call in ``self.penalty`` so the training loop
    can add it to the loss without changing what the model returns (a plain forecast, easy to serve).
    """

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        num_of_attentions: int,
        attention_hidden_layer_size: int,
        dropout: float,
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.attention = StructuredSelfAttention(hidden_size, attention_hidden_layer_size, num_of_attentions)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(num_of_attentions * hidden_size, 1)
        )
        self.penalty = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(x)
        pooled, weights = self.attention(states)
        self.penalty = self.attention.penalty(weights)
        return self.head(pooled).squeeze(-1)  # type: ignore[no-any-return]


def _check(params: Mapping[str, Any], data: SeriesData) -> None:
    """Reject values torch would accept silently or fail on with an unreadable message."""
    window = int(params["window"])
    if data.x_train.ndim != 3 or data.x_train.shape[1] != window:
        raise ValueError(
            f"params.window is {window}, but the fold's windows have shape {data.x_train.shape[1:]}: "
            "build the folds with build_folds(cfg.data, window=params.window)"
        )
    for key in ("num_of_attentions", "attention_hidden_layer_size", "hidden_size", "num_layers"):
        if int(params[key]) < 1:
            raise ValueError(f"params.{key} is {params[key]}, but must be at least 1")
    if float(params["attention_regularization"]) < 0:
        raise ValueError(
            f"params.attention_regularization is {params['attention_regularization']}, but must be >= 0"
        )


def train(
    params: Mapping[str, Any], data: SeriesData, report: Reporter, *, seed: int, device: str
) -> TrainResult:
    """Train on one fold; report ``val_loss`` (standardised MSE) and ``val_mae`` (target units) per epoch.

    Early stopping and the restored best epoch follow ``val_mae``, the metric the study optimises.
    """
    _check(params, data)
    _torch.seed_everything(seed)
    model = LSTMAttention(
        n_features=data.x_train.shape[2],
        hidden_size=int(params["hidden_size"]),
        num_layers=int(params["num_layers"]),
        num_of_attentions=int(params["num_of_attentions"]),
        attention_hidden_layer_size=int(params["attention_hidden_layer_size"]),
        dropout=float(params["dropout"]),
    )
    coefficient = float(params["attention_regularization"])

    def attention_penalty(trained: nn.Module) -> torch.Tensor:
        return coefficient * cast(LSTMAttention, trained).penalty

    model, metrics, epochs_run = _torch.fit(  # type: ignore[assignment]
        model,
        nn.MSELoss(),
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        params,
        report,
        _torch.regression_metrics(data.target_scale[1]),
        device=device,
        monitor="val_mae",
        extra_loss=attention_penalty,
    )
    return TrainResult(
        metrics=metrics,
        model=model,
        flavor="pytorch",
        epochs_run=epochs_run,
        input_example=data.x_val[:2],
    )
