"""Deployment tools: a local PostgreSQL + MLflow server + workers topology (the docker/ compose file's twin)."""
