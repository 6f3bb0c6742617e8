"""A multi-layer perceptron for tabular classification (the 8x8 digits by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from tuneflow.data.tabular import TabularData
from tuneflow.models import _torch
from tuneflow.models.base import Reporter, TrainResult


class MLP(nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden_size: int, n_layers: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.net(x)


def train(
    params: Mapping[str, Any], data: TabularData, report: Reporter, *, seed: int, device: str
) -> TrainResult:
    _torch.seed_everything(seed)
    model = MLP(
        n_features=data.x_train.shape[1],
        n_classes=data.n_classes,
        hidden_size=int(params["hidden_size"]),
        n_layers=int(params["n_layers"]),
        dropout=float(params["dropout"]),
    )
    model, metrics, epochs_run = _torch.fit(  # type: ignore[assignment]
        model,
        nn.CrossEntropyLoss(),
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        params,
        report,
        _torch.classification_metrics,
        device=device,
    )
    return TrainResult(
        metrics=metrics,
        model=model,
        flavor="pytorch",
        epochs_run=epochs_run,
        input_example=data.x_val[:2],
    )
