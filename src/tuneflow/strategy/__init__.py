"""Strategies: chains of stages (screen, learning-rate group, the rest, zones, decay schemes, repeats), each a
set of configurations in and a set out, run above the sweeper (``tuneflow.strategy.runner``)."""
