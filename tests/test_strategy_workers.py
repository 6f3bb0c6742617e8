"""Many workers on one strategy work as they do on one study: two processes running the same command on one
storage share each stage's study (exactly its budget between them), end each stage together (a worker whose
share is done waits for the other's trials), write each stage's finalists file once and go on from the same
file; the strategy's MLflow run is created once. A worker killed mid-stage: the other retries its trial from
its stale heartbeat and finishes the strategy."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from topology import Topology, finished, wait_until

from tuneflow.strategy import handoff as files
from tuneflow.strategy.backend import candidates_of

pytestmark = pytest.mark.slow

TINY = """\
name: tiny
stages:
  - {name: coarse, kind: search, sampler: random, n_trials: 6, top_k: 4, pruner: none}
  - {name: apart, kind: zones, threshold: 0.2, sampler: tpe, n_trials: 4, top_k: 1, pruner: none}
  - {name: final, kind: repeat, top: 2, seeds: 2}
"""

STAGES = ("coarse", "apart", "final")
KNOWN = "tuneflow_known_from"


def command(seconds_per_epoch: float) -> list[str]:
    # Heartbeats every second: a killed worker's trial is retried 2 s after its last beat.
    return ["+arch=twin_quadratic", "-m", "+strategy=tiny", "params.epochs=2",
            f"params.seconds_per_epoch={seconds_per_epoch}", "hydra.sweeper.heartbeat_interval=1",
            "hydra.sweeper.progress_interval=0.1", "tracking.log_model=false"]


def assert_one_strategy(topology: Topology, outputs: list[str]) -> None:
    folder = topology.project / "mlruns" / "studies" / "twin_quadratic"
    assert sorted(p.name for p in folder.glob("*.yaml")) == sorted(f"{s}.yaml" for s in STAGES)
    assert not list(folder.glob(".*.tmp"))
    coarse_study = topology.study("twin_quadratic/coarse")
    completed = [t for t in coarse_study.trials if t.state.name == "COMPLETE"]
    assert len(completed) == 6, [t.state.name for t in coarse_study.trials]
    # Each file is what its finished studies say: the coarse stage's top 4, each zone's best.
    coarse = files.read(folder / "coarse.yaml")
    expected = candidates_of(coarse_study, {})[:4]
    assert [(f["trial"], f["value"]) for f in coarse.finalists] == [(c["trial"], c["value"]) for c in expected]
    apart = files.read(folder / "apart.yaml")
    zone_trials = 0
    for zone in apart.zones:
        study = topology.study(zone["study"])
        # Trained ones: the coarse finalists inside the zone are added with their values (same fidelity).
        zone_trials += sum(t.state.name == "COMPLETE" and KNOWN not in t.user_attrs for t in study.trials)
        assert zone["best"]["trial"] == study.best_trial.number and zone["best"]["value"] == study.best_value
    assert zone_trials == 4
    final = topology.study("twin_quadratic/final")
    n_final = min(2, len(apart.finalists))  # one finalist per zone, the best 2 repeated
    assert sum(t.state.name == "COMPLETE" for t in final.trials) == n_final
    # Every worker logged the same winner, read from the same file.
    best = files.read(folder / "final.yaml").best
    assert best is not None
    for out in outputs:
        assert f"best {best['params']}" in out, out[-3000:]
    strategy_runs = topology.runs("twin_quadratic", role="strategy")
    assert len(strategy_runs) == 1 and strategy_runs[0].info.status == "FINISHED"
    stage_runs = topology.runs("twin_quadratic", role="study")
    assert all(r.data.tags["mlflow.parentRunId"] == strategy_runs[0].info.run_id for r in stage_runs)
    # One repeat per (finalist, seed): the run-once stage ran in one worker.
    repeats = topology.runs("twin_quadratic", role="repeat")
    assert len(repeats) == n_final * 2, [r.data.tags for r in repeats]


@pytest.fixture
def topology(project: Path) -> Topology:
    (project / "conf" / "strategy").mkdir(parents=True)
    (project / "conf" / "strategy" / "tiny.yaml").write_text(TINY)
    topology = Topology(project)
    yield topology
    topology.stop_workers()


def test_two_workers_share_every_stage_and_write_each_file_once(topology: Topology) -> None:
    workers = [topology.start_worker(*command(0.05)) for _ in range(2)]
    results = [finished(worker, timeout=300) for worker in workers]
    for code, out in results:
        assert code == 0, out[-3000:]
        assert "Traceback" not in out and "database is locked" not in out, out[-3000:]
    outputs = [out for _, out in results]
    assert_one_strategy(topology, outputs)
    # Both trained trials, and neither wrote a file the other had written.
    assert all("] trial " in out for out in outputs), outputs
    # Each stage study's jobs in a folder of its own: <sweep dir>/<stage>[/zone-k]/trial_N.
    project = topology.project
    for name in ["coarse", *(z["study"].split("/", 1)[1] for z in files.read(
            project / "mlruns" / "studies" / "twin_quadratic" / "apart.yaml").zones)]:
        folders = {p.name for p in project.glob(f"multirun/*/*/{name}/trial_*")}
        trained = [t for t in topology.study(f"twin_quadratic/{name}").trials if KNOWN not in t.user_attrs]
        assert folders == {f"trial_{t.number}" for t in trained}, name
        assert folders  # every study of the strategy ran trials, and no queued input was left WAITING
    written = [out.count("finalists in mlruns/studies/twin_quadratic/coarse.yaml") for out in outputs]
    assert sorted(written) == [0, 1], outputs


def test_a_worker_killed_mid_stage_leaves_the_strategy_to_the_other(topology: Topology) -> None:
    first = topology.start_worker(*command(0.5))
    second = topology.start_worker(*command(0.5))

    log = topology.project / "worker-2.log"

    def trained_by_second() -> int | None:
        study = topology.study("twin_quadratic/coarse")
        return next((t.number for t in study.trials if t.state.name == "RUNNING" and t.intermediate_values
                     and f"trial {t.number} running: " in log.read_text()), None)

    killed = wait_until(trained_by_second, "a coarse trial in training in the second worker", timeout=120,
                        workers=[first, second])
    second.send_signal(signal.SIGKILL)
    second.wait()
    code, out = finished(first, timeout=300)
    assert code == 0, out[-3000:]
    assert_one_strategy(topology, [out])
    trials = topology.study("twin_quadratic/coarse").trials
    assert trials[killed].state.name == "FAIL"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert retry.state.name == "COMPLETE" and retry.params == trials[killed].params
