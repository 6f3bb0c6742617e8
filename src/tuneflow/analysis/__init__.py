"""After a study: the report, repeats of the finalists with new seeds and their significance, fast-vs-full
fidelity, and the best configuration exported as a Hydra config."""
