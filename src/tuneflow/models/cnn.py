"""A small convolutional net for image rows (the 8x8 digits by default).

It takes the same flat rows as the MLP and reshapes them itself (``TabularData.image_shape``), so the
two architectures share one dataset and the saved model's input example is a plain feature row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from tuneflow.data.tabular import TabularData
from tuneflow.models import _torch
from tuneflow.models.base import Reporter, TrainResult


class ConvNet(nn.Module):
    """``n_conv`` blocks of conv + ReLU + 2x2 max-pool (channels double per block), then a linear head.

    Pooling stops once the map is 1x1, so any ``n_conv`` fits an 8x8 image.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        n_classes: int,
        channels: int,
        n_conv: int,
        kernel_size: int,
        dropout: float,
    ):
        super().__init__()
        self.image_shape = image_shape
        height, width = image_shape
        layers: list[nn.Module] = []
        in_channels = 1
        for block in range(n_conv):
            out_channels = channels * 2**block
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            if min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels * height * width, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(-1, 1, *self.image_shape)))  # type: ignore[no-any-return]


def _image_shape(params: Mapping[str, Any], data: TabularData) -> tuple[int, int]:
    """The rows' image shape, after rejecting configs that would fail deep inside torch."""
    if data.image_shape is None:
        raise ValueError("arch cnn needs image rows (data.name=digits), but this dataset has no image_shape")
    kernel_size = int(params["kernel_size"])
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"params.kernel_size is {kernel_size}, but must be odd (3, 5, ...) to keep the map size"
        )
    if int(params["n_conv"]) < 1 or int(params["channels"]) < 1:
        raise ValueError(
            f"params.n_conv={params['n_conv']}, params.channels={params['channels']}: both must be >= 1"
        )
    return data.image_shape


def train(
    params: Mapping[str, Any], data: TabularData, report: Reporter, *, seed: int, device: str
) -> TrainResult:
    image_shape = _image_shape(params, data)
    _torch.seed_everything(seed)
    model = ConvNet(
        image_shape=image_shape,
        n_classes=data.n_classes,
        channels=int(params["channels"]),
        n_conv=int(params["n_conv"]),
        kernel_size=int(params["kernel_size"]),
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
