"""Hydra config groups of tuneflow (a package so that the configs ship inside wheels)."""
