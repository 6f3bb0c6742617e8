"""Where a study lives: the Optuna storage (study, counts, heartbeats), storage URLs and the checks
and redaction around them, the locks workers take, SQLite's settings, and read-only access for reports."""
