"""Architectures: each module exposes ``train(params, data, report, *, seed, device) -> TrainResult``."""
