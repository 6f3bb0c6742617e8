-- Run once by the postgres image on an empty volume: MLflow's runs get a database of their own beside
-- Optuna's (POSTGRES_DB=optuna); both keep an alembic_version table, so they cannot share one.
CREATE DATABASE mlflow OWNER tuneflow;
