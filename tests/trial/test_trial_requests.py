"""A trial is recorded in full with few MLflow requests: the run with its tags, params, one batch at the end
(step metrics, final metrics, end tags) and the run's status; config.yaml and the model go straight to the
run's artifact store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra import compose, initialize_config_module

from tuneflow.storage.study import StudySettings, open_storage
from tuneflow.tracking import runs as tracking
from tuneflow.trial.arch_task import run as arch_task
from tuneflow.trial.job import run_trial


class CountingClient:
    """An MlflowClient that counts the calls made to it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


@pytest.mark.parametrize(("log_model", "state"), [(True, "COMPLETE"), (False, "COMPLETE"), (True, "FAIL")])
def test_a_trial_costs_a_handful_of_mlflow_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_model: bool, state: str
) -> None:
    root = tmp_path / "mlruns"
    settings = StudySettings(name="quadratic", storage_url=f"sqlite:///{root / 'optuna.db'}", direction="minimize",
                             objective="val_loss", n_trials=1, root_dir=str(root), heartbeat_interval=None,
                             pruner={"_target_": "optuna.pruners.NopPruner"},
                             tracking_uri=tracking.resolve_tracking_uri(None, root), experiment="quadratic",
                             params_node="params", log_params=("params", "data", "seed"))
    study = optuna.create_study(study_name="quadratic", storage=open_storage(settings.storage_url))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(-5, 5)})
    overrides = ["+arch=quadratic", f"params.x={trial.params['x']}",
                 f"tracking.log_model={str(log_model).lower()}", f"root_dir={root}"]
    if state == "FAIL":
        overrides.append("params.fail_above=-100")
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)

    client = CountingClient(tracking.client_for(tracking.resolve_tracking_uri(None, root)))
    monkeypatch.setattr(tracking, "client_for", lambda uri: client)
    tracking.experiment_id_for(client, "quadratic", None)  # the sweeper resolved it before the trial
    client.calls.clear()

    outcome = run_trial(arch_task, cfg, settings, trial.number)

    assert outcome.state == state
    assert dict(client.calls) == {"create_run": 1, "log_batch": 2, "set_terminated": 1}
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    expected = {"config.yaml"} | ({"model"} if state == "COMPLETE" and log_model else set())
    assert artifacts == expected | ({"error.txt"} if state == "FAIL" else set())
    run = client.get_run(outcome.run_id)
    assert run.data.tags["tuneflow.state"] == state
    assert run.info.status == tracking.RUN_STATUS[state]
    assert run.data.params["x"] == str(trial.params["x"])
    if state == "COMPLETE":
        assert len(client.get_metric_history(outcome.run_id, "val_loss")) == 20
        assert run.data.metrics["objective"] == pytest.approx(outcome.value)
    else:
        assert "synthetic failure" in run.data.tags["tuneflow.error"]
    if state == "COMPLETE" and log_model:
        # The model's requirements are pinned explicitly (MLflow infers them otherwise: seconds per model).
        from importlib.metadata import version

        from mlflow.artifacts import download_artifacts

        requirements = Path(download_artifacts(f"runs:/{outcome.run_id}/model/requirements.txt",
                                               tracking_uri=client.tracking_uri)).read_text().split()
        assert {f"cloudpickle=={version('cloudpickle')}", f"tuneflow=={version('tuneflow')}"} <= set(requirements)
