"""The command line: the `tuneflow` app (`python -m tuneflow`), its subcommands (report, repeat, ui,
spec, fidelity) and the experiment-spec runner. Nothing imports it."""
