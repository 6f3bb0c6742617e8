"""Bad overrides on the command line: architectures, sweeper settings, search spaces, pruners and samplers,
study names, date ranges. Each is one line ``tuneflow: error: ...``, exit 2, and the prepared project byte for
byte as it was (``bad_input.conftest``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_tuneflow

from bad_input.conftest import Case, Project, check, closed_port

#: Each case is quick (about 0.5 s in-process), but the suite runs ~290 of them: kept out of the fast subset.
pytestmark = pytest.mark.slow

RANGES_BASE = ["+arch=lstm_attention", "-m", "mode=fast"]
Q = ["+arch=quadratic", "-m"]
M = ["+arch=mlp", "-m"]

CASES: dict[str, Case] = {
    # --- overrides ------------------------------------------------------------------------------
    "unknown architecture": Case(["+arch=transformer", "-m"], "unknown arch 'transformer': choose one of"),
    "unknown sampler": Case(["+arch=mlp", "-m", "hydra/sweeper/sampler=tpee"], "unknown hydra/sweeper/sampler 'tpee'"),
    "sampler Optuna removed": Case(["+arch=mlp", "-m", "hydra/sweeper/sampler=motpe"],
                                   "hydra.sweeper.sampler (tuneflow.search.configs.raise_motpe_removed): The 'motpe' sampler was removed in Optuna 4.0."),
    "threshold pruner without a bound": Case([*Q, "hydra/sweeper/pruner=threshold"],
                                             "hydra.sweeper.pruner: cannot build ThresholdPruner: Either lower or upper must be specified"),
    "unknown pruner": Case(["+arch=mlp", "-m", "hydra/sweeper/pruner=medain"], "unknown hydra/sweeper/pruner 'medain'"),
    "unknown mode": Case([*Q, "mode=turbo"], "unknown mode 'turbo': choose one of fast, full"),
    "typo in a fixed override": Case(["+arch=mlp", "-m", "params.epochz=3"], "Could not override 'params.epochz'"),
    "no architecture": Case(["-m"], "no architecture chosen: add +arch=NAME, one of cnn, lightgbm"),
    "no architecture, single run": Case([], "no architecture chosen: add +arch=NAME"),
    "zero trials": Case([*Q, "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials is 0"),
    "trials not a number": Case([*Q, "hydra.sweeper.n_trials=many"], "Value 'many' of type 'str' could not be converted to Integer"),
    "zero jobs": Case([*Q, "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs is 0, but must be at least 1"),
    "bad direction": Case([*Q, "hydra.sweeper.direction=up"], "hydra.sweeper.direction is 'up'"),
    "direction of the existing study flipped": Case(
        [*Q, "hydra.sweeper.direction=maximize"], "study 'quadratic' already exists with direction minimize"),
    "bad failure rate": Case([*Q, "hydra.sweeper.max_failure_rate=2"], "max_failure_rate is 2.0"),
    "negative heartbeat": Case([*Q, "hydra.sweeper.heartbeat_interval=-1"], "hydra.sweeper.heartbeat_interval is -1"),
    "zoom in on a study that does not exist": Case([*Q, "hydra.sweeper.zoom.study=screen"], "hydra.sweeper.zoom.study: no study 'screen'"),
    "a GPU this machine lacks": Case(["+arch=mlp", "-m", "device=cuda:7"], "device is 'cuda:7'"),
    "not a device": Case(["+arch=mlp", "-m", "device=gpu"], "device is 'gpu', but must be auto, cpu, cuda or cuda:N"),
    "zero torch threads": Case(["+arch=mlp", "-m", "torch_threads=0"], "torch_threads is 0, but must be"),
    "torch threads as text, single run": Case(["+arch=mlp", "torch_threads=two"], "torch_threads is 'two', but must be"),
    # --- search spaces --------------------------------------------------------------------------
    "low > high": Case(["+arch=mlp", "-m", "hydra.sweeper.params.lr=interval(0.1, 0.01)"], "params.lr: interval(0.1, 0.01) has low > high"),
    "low > high in the existing study's space": Case([*Q, "hydra.sweeper.params.x=interval(3, 1)"], "params.x: interval(3.0, 1.0) has low > high"),
    "log with low <= 0": Case(["+arch=mlp", "-m", "hydra.sweeper.params.lr=tag(log, interval(0, 0.1))"], "log scale needs low > 0"),
    "empty choice": Case(["+arch=mlp", "-m", "hydra.sweeper.params.batch_size=choice()"], "empty choice is not legal"),
    "empty range": Case(["+arch=mlp", "-m", "hydra.sweeper.params.n_layers=range(3, 1)"], "range(3, 1) is empty"),
    "parameter the arch lacks": Case(["+arch=mlp", "-m", "hydra.sweeper.params.lrr=interval(0.1, 0.2)"], "search space: not in the app's config: 'lrr' (no params.lrr); known names under params: batch_size"),
    "sweep on a parameter the arch lacks": Case(["+arch=mlp", "-m", "params.lrr=interval(0.1, 0.2)"],
                                                "not in the app's config: 'lrr' (no params.lrr)"),
    "text choices for a number": Case(["+arch=mlp", "-m", "hydra.sweeper.params.hidden_size=choice(a, b)"], "params.hidden_size is a number"),
    "grid over an interval": Case(["+arch=mlp", "-m", "hydra/sweeper/sampler=grid"], "grid sampler cannot enumerate"),
    "unknown tag": Case([*Q, "hydra.sweeper.params.x=tag(foo, interval(1, 2))"], "params.x has tag(s) ['foo']; supported tags are log and int"),
    "interval of words": Case([*Q, "hydra.sweeper.params.x=interval(a, b)"], "cannot parse params.x='interval(a, b)'"),
    # --- date ranges ----------------------------------------------------------------------------
    "date range ends before it starts": Case([*RANGES_BASE, "data.date_ranges=[[2014-04-01,2014-01-01]]"],
                                             "data.date_ranges[0] 2014-04-01..2014-01-01 ends on or before it starts"),
    "date range not a date": Case([*RANGES_BASE, "data.date_ranges=[[2014-13-01,2014-14-01]]"], "is not a date, write YYYY-MM-DD"),
    "date range outside the data": Case([*RANGES_BASE, "data.date_ranges=[[2016-01-01,2016-02-01]]"], "lies outside the data (2012-01-01..2015-12-31"),
    "date range not a pair": Case([*RANGES_BASE, "data.date_ranges=[[2014-01-01]]"], "data.date_ranges[0] is ['2014-01-01'], but must be a [start, end] pair"),
    "window longer than a date range": Case(["+arch=lstm_attention", "-m", "data.date_ranges=[[2014-01-01,2014-01-10]]"],
                                            "params.window is 28 days, but date range 2014-01-01..2014-01-10 holds only 9 days"),
    "unknown way to combine ranges": Case(["+arch=lstm_attention", "-m", "data.objective_over_ranges=max"],
                                          "data.objective_over_ranges is 'max'"),
    # --- sweeper settings, every kind of wrong value -------------------------------------------
    "negative trials": Case([*Q, "hydra.sweeper.n_trials=-5"], "hydra.sweeper.n_trials is -5"),
    "fractional trials": Case([*Q, "hydra.sweeper.n_trials=1.5"], "hydra.sweeper.n_trials"),
    "trials null": Case([*Q, "hydra.sweeper.n_trials=null"], "hydra.sweeper.n_trials"),
    "negative jobs": Case([*Q, "hydra.sweeper.n_jobs=-3"], "hydra.sweeper.n_jobs is -3"),
    "jobs as text": Case([*Q, "hydra.sweeper.n_jobs=all"], "hydra.sweeper.n_jobs"),
    "direction in capitals": Case([*Q, "hydra.sweeper.direction=MAXIMISE"], "hydra.sweeper.direction is 'MAXIMISE'"),
    "direction as a number": Case([*Q, "hydra.sweeper.direction=1"], "hydra.sweeper.direction"),
    "negative failure rate": Case([*Q, "hydra.sweeper.max_failure_rate=-0.1"], "max_failure_rate is -0.1"),
    "failure rate nan": Case([*Q, "hydra.sweeper.max_failure_rate=nan"], "max_failure_rate is nan"),
    "failure rate as text": Case([*Q, "hydra.sweeper.max_failure_rate=some"], "hydra.sweeper.max_failure_rate"),
    "heartbeat 10**20": Case([*Q, "hydra.sweeper.heartbeat_interval=100000000000000000000"],
                             "hydra.sweeper.heartbeat_interval is 100000000000000000000"),
    "heartbeat of a year": Case([*Q, "hydra.sweeper.heartbeat_interval=31536000"], "hydra.sweeper.heartbeat_interval is 31536000"),
    "heartbeat as text": Case([*Q, "hydra.sweeper.heartbeat_interval=often"], "hydra.sweeper.heartbeat_interval"),
    "heartbeat fractional": Case([*Q, "hydra.sweeper.heartbeat_interval=0.5"], "hydra.sweeper.heartbeat_interval"),
    "root_dir is a file": Case([*Q, "root_dir=blocker"], "blocker"),
    "root_dir under a file": Case([*Q, "root_dir=blocker/mlruns"], "blocker"),
    "root_dir unwritable": Case([*Q, "root_dir=/proc/tuneflow"], "/proc/tuneflow"),
    "custom space that does not load": Case([*Q, "hydra.sweeper.custom_search_space=nowhere.space"],
                                            "hydra.sweeper.custom_search_space 'nowhere.space' cannot be loaded"),
    # --- study names: one validation, nothing written outside root_dir ------------------------
    "study name climbs out": Case([*Q, "hydra.sweeper.study_name=../../../escape"], "hydra.sweeper.study_name is '../../../escape'"),
    "study name ..": Case([*Q, "hydra.sweeper.study_name=.."], "hydra.sweeper.study_name is '..'"),
    "study name .": Case([*Q, "hydra.sweeper.study_name=."], "hydra.sweeper.study_name is '.'"),
    "study name climbs out of a nested name": Case([*Q, "hydra.sweeper.study_name=a/../../b"],
                                                   "hydra.sweeper.study_name is 'a/../../b'"),
    "study name with an empty part": Case([*Q, "hydra.sweeper.study_name=a//b"], "hydra.sweeper.study_name is 'a//b'"),
    "study name absolute": Case([*Q, "hydra.sweeper.study_name=/tmp/escape"], "hydra.sweeper.study_name is '/tmp/escape'"),
    "study name with a backslash": Case([*Q, "hydra.sweeper.study_name='a\\\\b'"], "hydra.sweeper.study_name is"),
    "study name of 300 characters": Case([*Q, f"hydra.sweeper.study_name={'s' * 300}"], "characters"),
    "study name with a quote": Case([*Q, "hydra.sweeper.study_name='it\\'s'"], "hydra.sweeper.study_name is \"it's\""),
    "study name with a double quote": Case([*Q, "hydra.sweeper.study_name='say \"hi\"'"], "hydra.sweeper.study_name is"),
    "study name with a backtick": Case([*Q, "hydra.sweeper.study_name='a`b'"], "hydra.sweeper.study_name is 'a`b'"),
    "study name with a newline": Case([*Q, "hydra.sweeper.study_name='a\nb'"], "hydra.sweeper.study_name is"),
    "study name blank": Case([*Q, "hydra.sweeper.study_name='  '"], "hydra.sweeper.study_name is '  '"),
    "study name unquoted apostrophe": Case([*Q, "hydra.sweeper.study_name=it's"], "hydra.sweeper.study_name=it's"),
    # --- what the app's config does not have -----------------------------------------------------
    "config group that does not exist": Case([*Q, "+optimizer=adam"], "+optimizer=adam"),
    "config group that does not exist, single run": Case(["+arch=quadratic", "+optimizer=adam"], "+optimizer=adam"),
    "parameter the arch lacks, added with +": Case([*Q, "+params.z=1"], "params.z"),
    "parameter the arch lacks, single run": Case(["+arch=quadratic", "+params.z=1"], "params.z"),
    "top-level key the app lacks": Case([*Q, "+learning_rate=0.1"], "learning_rate"),
    "seed as text": Case([*Q, "seed=abc"], "seed is 'abc'"),
    "seed as text, single run": Case(["+arch=quadratic", "seed=abc"], "seed is 'abc'"),
    "seed fractional": Case([*Q, "seed=1.5"], "seed is 1.5"),
    "seed negative": Case([*Q, "seed=-1"], "seed is -1"),
    "seed too large": Case([*Q, "seed=100000000000000000000"], "seed is 100000000000000000000"),
    # --- search spaces Optuna cannot sample -------------------------------------------------------
    "interval(nan, 1)": Case([*Q, "hydra.sweeper.params.x=interval(nan, 1)"], "params.x: interval(nan, 1.0)"),
    "interval(1, nan)": Case([*Q, "hydra.sweeper.params.x=interval(1, nan)"], "params.x: interval(1.0, nan)"),
    "interval(-inf, inf)": Case([*Q, "hydra.sweeper.params.x=interval(-inf, inf)"], "params.x: interval(-inf, inf)"),
    "interval(0, inf)": Case([*Q, "hydra.sweeper.params.x=interval(0, inf)"], "params.x: interval(0.0, inf)"),
    "interval(-1e308, 1e308)": Case([*Q, "hydra.sweeper.params.x=interval(-1e308, 1e308)"], "params.x: interval("),
    "log interval to inf": Case([*Q, "hydra.sweeper.params.x=tag(log, interval(1, inf))"], "params.x: interval(1.0, inf)"),
    "interval(nan, 1) on the command line": Case([*Q, "params.x=interval(nan, 1)"], "params.x: interval(nan, 1.0)"),
    "range(0, inf)": Case([*Q, "hydra.sweeper.params.x=range(0, inf)"], "params.x"),
    "choice of nan only": Case([*Q, "hydra.sweeper.params.x=choice(nan)"], "params.x"),
    "interval with one bound": Case([*Q, "hydra.sweeper.params.x=interval(1)"], "params.x"),
    "low > high on the command line": Case([*Q, "params.x=interval(3, 1)"], "params.x: interval(3.0, 1.0) has low > high"),
    "log interval from a negative": Case([*Q, "hydra.sweeper.params.x=tag(log, interval(-1, 1))"], "log scale needs low > 0"),
    # --- pruners and samplers Optuna rejects: built at plan time --------------------------------
    "median pruner, negative warmup": Case([*Q, "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_warmup_steps=-1"],
                                           "cannot build MedianPruner: Number of warmup steps cannot be negative"),
    "median pruner, negative startup trials": Case([*Q, "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=-1"],
                                                   "cannot build MedianPruner"),
    "median pruner, zero interval": Case([*Q, "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.interval_steps=0"],
                                         "cannot build MedianPruner"),
    "percentile pruner over 100": Case([*Q, "hydra/sweeper/pruner=percentile", "hydra.sweeper.pruner.percentile=150"],
                                       "cannot build PercentilePruner"),
    "successive halving min resource 0": Case([*Q, "hydra/sweeper/pruner=successive_halving", "hydra.sweeper.pruner.min_resource=0"],
                                              "cannot build SuccessiveHalvingPruner"),
    "threshold lower above upper": Case([*Q, "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=2",
                                         "hydra.sweeper.pruner.upper=1"], "cannot build ThresholdPruner"),
    "pruner setting it does not have": Case([*Q, "hydra/sweeper/pruner=median", "+hydra.sweeper.pruner.patience=3"],
                                            "cannot build MedianPruner"),
    "pruner warmup as text": Case([*Q, "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_warmup_steps=some"],
                                  "hydra.sweeper.pruner.n_warmup_steps"),
    "sampler seed as text": Case([*Q, "hydra.sweeper.sampler.seed=abc"], "hydra.sweeper.sampler.seed"),
    "sampler setting it does not have": Case([*Q, "+hydra.sweeper.sampler.speed=3"], "TPESampler"),
    "unknown QMC type": Case([*Q, "hydra/sweeper/sampler=qmc", "hydra.sweeper.sampler.qmc_type=spiral"], "QMCSampler"),
    # --- zoom --------------------------------------------------------------------------------------
    "zoom on the study itself": Case([*Q, "hydra.sweeper.zoom.study=quadratic"], "the study itself"),
    "zoom from another architecture's study": Case([*M, "hydra.sweeper.study_name=mlp_zoom", "hydra.sweeper.zoom.study=quadratic"],
                                                   "hydra.sweeper.zoom.study: study 'quadratic' searched x, y, but this study searches"),
    "zoom top_k zero": Case([*Q, "hydra.sweeper.study_name=zoomed", "hydra.sweeper.zoom.study=quadratic", "hydra.sweeper.zoom.top_k=0"],
                            "hydra.sweeper.zoom.top_k is 0"),
    "zoom negative margin": Case([*Q, "hydra.sweeper.study_name=zoomed", "hydra.sweeper.zoom.study=quadratic",
                                  "hydra.sweeper.zoom.margin=-1"], "hydra.sweeper.zoom.margin is -1"),
    "zoom study name that climbs out": Case([*Q, "hydra.sweeper.study_name=zoomed", "hydra.sweeper.zoom.study=../x"], "no study '../x'"),
    # --- the single run (no -m) --------------------------------------------------------------------
    "device not a device, single run": Case(["+arch=quadratic", "device=gpu"], "device is 'gpu'"),
    "unknown mode, single run": Case(["+arch=quadratic", "mode=turbo"], "unknown mode 'turbo'"),
    "unknown architecture, single run": Case(["+arch=transformer"], "unknown arch 'transformer'"),
    "typo in a fixed override, single run": Case(["+arch=quadratic", "params.xx=3"], "Could not override 'params.xx'"),
    "sweep syntax without -m": Case(["+arch=quadratic", "params.x=interval(1, 2)"], "params.x"),
    # --- storage URLs ---------------------------------------------------------------------------
    "storage: postgres:// scheme": Case([*Q, "hydra.sweeper.storage=postgres://tuneflow@127.0.0.1/optuna"], "postgresql://, not postgres://"),
    "storage: unknown storage": Case([*Q, "hydra/sweeper/storage=postgress"], "unknown hydra/sweeper/storage 'postgress': choose one of journal, postgres, sqlite"),
    "storage: in-memory SQLite": Case([*Q, "hydra.sweeper.storage=sqlite://"], "sqlite:// (in memory): workers and resumed runs cannot share it"),
    "storage: no such database kind": Case([*Q, "hydra.sweeper.storage=redis://127.0.0.1/0"], "'redis' is not a database SQLAlchemy knows"),
    "storage: driver not installed": Case([*Q, "hydra.sweeper.storage=mysql://tuneflow@127.0.0.1/optuna"], "the mysql driver is not installed"),
    "storage: psycopg 3 named but not installed": Case([*Q, "hydra.sweeper.storage=postgresql+psycopg://tuneflow@127.0.0.1/optuna"],
                                                      "install psycopg 3"),
    "storage: nothing listens there": Case([*Q, "hydra/sweeper/storage=postgres", f"hydra.sweeper.storage.port={closed_port()}"],
                                           "hydra.sweeper.storage: cannot connect to postgresql+psycopg2://tuneflow@127.0.0.1:"),
    "storage: the README's postgresql:// form, nothing listening": Case(
        [*Q, f"hydra.sweeper.storage=postgresql://tuneflow@127.0.0.1:{closed_port()}/optuna"],
        "cannot connect to postgresql+psycopg2://tuneflow@127.0.0.1:"),
    "storage: SQLite file under a file": Case([*Q, "hydra.sweeper.storage=sqlite:///blocker/optuna.db"], "cannot create blocker/optuna.db"),
    "storage: SQLite file unwritable": Case([*Q, "hydra.sweeper.storage=sqlite:////proc/tuneflow/optuna.db"], "cannot create /proc/tuneflow/optuna.db"),
    "storage: port not a number": Case([*Q, "hydra/sweeper/storage=postgres", "hydra.sweeper.storage.port=fivefourthreetwo"],
                                       "hydra.sweeper.storage.port is 'fivefourthreetwo'"),
    "storage: host empty": Case([*Q, "hydra/sweeper/storage=postgres", "hydra.sweeper.storage.host=''"], "hydra.sweeper.storage.host is empty"),
    "storage: not a URL": Case([*Q, "hydra.sweeper.storage.url=optuna.db"], "which is not a database URL"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_override(project_copy: Project, case: Case) -> None:
    check(project_copy, case)


def test_bad_input_in_a_fresh_folder_creates_nothing(project: Path) -> None:
    result = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.params.x=interval(3, 1)")
    assert result.returncode == 2
    assert list(project.iterdir()) == []


def test_the_storage_url_shorthand_of_earlier_versions_still_means_the_url(project: Path) -> None:
    from tuneflow.storage.urls import expand_storage_shorthand

    assert expand_storage_shorthand(["hydra.sweeper.storage=postgresql://u@h/db", "hydra.sweeper.storage=postgres",
                                     "hydra.sweeper.storage=null", "x=1"]) == [
        "++hydra.sweeper.storage.url=postgresql://u@h/db", "hydra/sweeper/storage=postgres",
        "hydra.sweeper.storage=null", "x=1"]
    result = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=1", "tracking.log_model=false",
                          f"hydra.sweeper.storage=sqlite:///{project / 'elsewhere.db'}")
    assert result.returncode == 0, result.output
    assert (project / "elsewhere.db").exists()
    assert not (project / "mlruns" / "optuna.db").exists() and not (project / "mlruns" / "optuna.journal").exists()
