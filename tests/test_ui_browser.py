"""A user runs `tuneflow ui STUDY`, opens both addresses in a browser, sees the study's runs and trials,
and stops both servers with Ctrl-C.

Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by .ci/run) through Selenium.
Locally the test is skipped when Chromium is missing; in CI (TUNEFLOW_CI=1) it fails instead.
Screenshots go to the test's tmp folder, and also to $TUNEFLOW_SCREENSHOT_DIR when set (README images).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import load_study, run_tuneflow, tuneflow_env

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,900",
)
N_TRIALS = 4


def require_chromium() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver"
    if os.environ.get("TUNEFLOW_CI"):
        pytest.fail(message)
    pytest.skip(message)


def start_ui(project: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`tuneflow ui quadratic` in ``project``, once both servers answer; the addresses it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tuneflow", "ui", "quadratic"], cwd=project, env=tuneflow_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    addresses: dict[str, str] = {}
    lines = []
    assert process.stdout is not None
    for line in process.stdout:  # the addresses come once both servers answer
        lines.append(line)
        name, _, url = line.partition(": ")
        if url.strip().startswith("http://127.0.0.1:"):
            addresses[name.strip()] = url.strip()
        if "Ctrl-C" in line:
            break
    assert set(addresses) == {"MLflow UI", "optuna-dashboard"}, "".join(lines)
    return process, addresses


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def tuned_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study with complete, pruned and failed trials (the seeded sampler's first points:
    x > 1 fails, a loss above 40 at the first epoch is pruned)."""
    require_chromium()
    project = tmp_path_factory.mktemp("ui_project")
    tuned = run_tuneflow(project, "+arch=quadratic", "-m", f"hydra.sweeper.n_trials={N_TRIALS}", "params.epochs=2",
                         "params.fail_above=1.0", "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=40",
                         "hydra.sweeper.sampler.seed=0", "hydra.sweeper.max_failure_rate=1")
    assert tuned.returncode == 0, tuned.output
    states = {t.state.name for t in load_study(project, "quadratic").trials}
    assert states == {"COMPLETE", "PRUNED", "FAIL"}, states
    return project


@pytest.fixture(scope="module")
def served(tuned_project: Path) -> Iterator[dict[str, Any]]:
    """`tuneflow ui` serving the tiny study, shared by the tests that only look (none stops it)."""
    process, addresses = start_ui(tuned_project)
    try:
        yield {"project": tuned_project, "process": process, "addresses": addresses,
               "study": load_study(tuned_project, "quadratic")}
    finally:
        stop(process)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver: Any, texts: list[str], timeout: float = 90) -> str:
    """The page's text once it shows every one of ``texts`` (both UIs render with JavaScript)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body() -> str:
        return str(driver.find_element(By.TAG_NAME, "body").text)

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: all(t in body() for t in texts))
    except TimeoutException:
        missing = [t for t in texts if t not in body()]
        raise AssertionError(f"page never showed {missing}; it shows: {body()[:1500]!r}") from None
    return body()


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    target = os.environ.get("TUNEFLOW_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    assert path.stat().st_size > 10_000, "a blank screenshot"
    return path


def test_mlflow_ui_opens_on_the_trial_runs_with_objective_state_and_params_as_columns(
    served: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    study = served["study"]
    suffix = {"COMPLETE": "", "PRUNED": "-pruned", "FAIL": "-failed"}
    expected = {t.number: f"quadratic-trial-{t.number}{suffix[t.state.name]}" for t in study.trials}
    browser.get(served["addresses"]["MLflow UI"])
    # No click: the trial runs are rows (not folded under the study's run), pruned and failed ones named
    # so, and the objective and the searched params are columns.
    text = wait_for_text(browser, [*expected.values(), f"{len(study.trials)} matching runs"])
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "[role='columnheader']")]
    for column in ("objective", "x", "y"):
        assert column in headers, f"column {column} shown: {headers}"
    names = [line for line in text.splitlines() if line.startswith("quadratic-trial-")]
    completed = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert names[:len(completed)] == [expected[t.number] for t in completed], "best objective first"
    screenshot(browser, tmp_path, "mlflow-ui.png")


def test_optuna_dashboard_shows_the_study_and_its_trials(served: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    study = served["study"]
    url = served["addresses"]["optuna-dashboard"]
    browser.get(url)
    wait_for_text(browser, ["quadratic", f"Best Trial (number={study.best_trial.number})", "History"])
    screenshot(browser, tmp_path, "optuna-dashboard.png")
    browser.get(f"{url}/trials")
    wait_for_text(browser, [f"Trial {n}" for n in range(N_TRIALS)])


def test_an_optuna_dashboard_trial_links_to_its_mlflow_run(served: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    best = served["study"].best_trial
    run_id = best.user_attrs["mlflow_run_id"]
    browser.get(f"{served['addresses']['optuna-dashboard']}/trials")  # opens on the best trial
    wait_for_text(browser, [f"MLflow run of trial {best.number}: {run_id}"])
    (link,) = [a for a in browser.find_elements(By.TAG_NAME, "a") if a.text == run_id]
    assert link.get_attribute("href").startswith(served["addresses"]["MLflow UI"].split("#")[0])
    browser.get(link.get_attribute("href"))
    wait_for_text(browser, [f"quadratic-trial-{best.number}", run_id])


def test_ctrl_c_stops_both_servers_and_everything_they_started(tuned_project: Path, tmp_path: Path) -> None:
    # Its own copy of the study and its own `tuneflow ui`: the shared one stays up for the other tests.
    project = tmp_path / "project"
    shutil.copytree(tuned_project, project)
    process, addresses = start_ui(project)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    for url in addresses.values():
        assert not answers(url), f"{url} still answers after Ctrl-C"
    assert processes_mentioning(str(project)) == [], "a server process outlived tuneflow ui"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the servers name the project's stores)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if text in command and state != "Z":
            found.append(command)
    return found
