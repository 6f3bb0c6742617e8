"""Bad files a user writes: architecture configs under ``conf/arch/``, search spaces, JSON experiment specs
(``tuneflow spec``). Each is one line, exit 2, and the prepared project byte for byte as it was."""

from __future__ import annotations

import json

import pytest

from bad_input.conftest import Case, Project, check

#: Each case is quick (about 0.5 s in-process), but the suite runs ~290 of them: kept out of the fast subset.
pytestmark = pytest.mark.slow

SPEC = {"architecture": "quadratic", "parameters": {"x": [1, 2]}}
LSTM_SPEC = {"architecture": "lstm_attention", "parameters": {"num_of_attentions": [1, 2]}}
TRAINER = "def train(params, data, report, device):\n    return {'val_loss': 1.0}\n"


def arch(body: str, name: str = "mine") -> dict[str, str | bytes]:
    return {f"conf/arch/{name}.yaml": "# @package _global_\n" + body, "mine_model.py": TRAINER}


GOOD_ARCH = "defaults:\n  - /data: none\narch:\n  name: mine\n  trainer: mine_model.train\n  objective: val_loss\n  direction: minimize\nparams:\n  x: 1.0\n"


def spec(value: object, run: bool = True) -> Case:
    """``tuneflow spec spec.json`` with ``value`` (a dict, or the file's raw text or bytes)."""
    content = value if isinstance(value, (str, bytes)) else json.dumps(value)
    return Case(["spec", "spec.json"], "", files={"spec.json": content})


def spec_case(value: object, message: str) -> Case:
    base = spec(value)
    return Case(base.args, message, files=base.files)


CASES: dict[str, Case] = {
    # --- architecture configs ---------------------------------------------------------------------
    "arch yaml with a syntax error": Case(["+arch=mine", "-m"], "conf/arch/mine.yaml",
                                          files=arch("arch:\n  name: mine\n   trainer: [unclosed\n")),
    "arch yaml with a tab": Case(["+arch=mine", "-m"], "conf/arch/mine.yaml", files=arch("arch:\n\tname: mine\n")),
    "arch yaml with a syntax error, single run": Case(["+arch=mine"], "conf/arch/mine.yaml",
                                                      files=arch("arch: {name: mine, trainer: [\n")),
    "arch without a trainer": Case(["+arch=mine", "-m"], "arch.trainer is missing",
                                   files=arch("defaults:\n  - /data: none\narch:\n  name: mine\n  objective: val_loss\nparams:\n  x: 1.0\n")),
    "arch without a trainer, single run": Case(["+arch=mine"], "arch.trainer is missing",
                                               files=arch("defaults:\n  - /data: none\narch:\n  name: mine\n  objective: val_loss\nparams:\n  x: 1.0\n")),
    "arch without an objective": Case(["+arch=mine", "-m", "hydra.sweeper.params.x=interval(0, 1)"], "arch.objective is missing",
                                      files=arch("defaults:\n  - /data: none\narch:\n  name: mine\n  trainer: mine_model.train\nparams:\n  x: 1.0\n")),
    "arch without a name": Case(["+arch=mine", "-m", "hydra.sweeper.params.x=interval(0, 1)"], "arch.name is missing",
                                files=arch("defaults:\n  - /data: none\narch:\n  trainer: mine_model.train\n  objective: val_loss\nparams:\n  x: 1.0\n")),
    "arch that is a list": Case(["+arch=mine", "-m"], "In 'arch/mine'", files=arch("- a\n- b\n")),
    "arch that is empty": Case(["+arch=mine", "-m"], "arch", files=arch("")),
    "arch with a bad direction": Case(["+arch=mine", "-m", "hydra.sweeper.params.x=interval(0, 1)"], "direction is 'down'",
                                      files=arch(GOOD_ARCH.replace("direction: minimize", "direction: down"))),
    "arch whose search space file is broken": Case(
        ["+arch=mine", "-m"], "conf/search_space/mine.yaml",
        files={**arch(GOOD_ARCH.replace("defaults:\n", "defaults:\n  - /search_space: mine\n")),
               "conf/search_space/mine.yaml": "# @package _global_\nhydra:\n  sweeper:\n    params: {x: [\n"}),
    "arch whose search space names a missing parameter": Case(
        ["+arch=mine", "-m"], "not in the app's config: 'w'",
        files={**arch(GOOD_ARCH.replace("defaults:\n", "defaults:\n  - /search_space: mine\n")),
               "conf/search_space/mine.yaml": "# @package _global_\nhydra:\n  sweeper:\n    params:\n      w: interval(0, 1)\n"}),
    "arch file that is not UTF-8": Case(["+arch=mine", "-m"], "conf/arch/mine.yaml",
                                        files={"conf/arch/mine.yaml": "# @package _global_\narch:\n  name: caf\xe9\n".encode("latin-1")}),
    # --- JSON experiment specs ----------------------------------------------------------------------
    "spec: malformed JSON": spec_case('{"architecture": "quadratic",', "malformed JSON at line 1"),
    "spec: empty file": spec_case("", "malformed JSON"),
    "spec: a list, not an object": spec_case("[1, 2]", "must be a JSON object"),
    "spec: UTF-16": spec_case(json.dumps(SPEC).encode("utf-16"), "spec.json is not UTF-8 text"),
    "spec: Latin-1": spec_case(json.dumps({**SPEC, "study_name": "caf\xe9"}, ensure_ascii=False).encode("latin-1"), "spec.json is not UTF-8 text"),
    "spec: binary garbage": spec_case(bytes(range(256)), "spec.json is not UTF-8 text"),
    "spec: unknown key": spec_case({**LSTM_SPEC, "date": 1}, "unknown key 'date' in the experiment spec"),
    "spec: unknown architecture": spec_case({**LSTM_SPEC, "architecture": "lstm"}, "unknown architecture 'lstm'"),
    "spec: no architecture": spec_case({"parameters": {"x": [1]}}, "architecture"),
    "spec: no parameters": spec_case({"architecture": "quadratic"}, "parameters"),
    "spec: parameters not an object": spec_case({"architecture": "quadratic", "parameters": [1, 2]}, "parameters"),
    "spec: values not a list": spec_case({"architecture": "quadratic", "parameters": {"x": 3}}, "x"),
    "spec: empty value list": spec_case({"architecture": "quadratic", "parameters": {"x": []}}, "x"),
    # Found by the study the spec starts (a child process): its one line is the only line on stderr.
    "spec: parameter the arch lacks": Case(["spec", "spec.json"], "not in the app's config: 'z'", subprocess=True, files={
        "spec.json": json.dumps({"architecture": "quadratic", "parameters": {"z": [1, 2]}})}),
    "spec: range ends before it starts": spec_case({**LSTM_SPEC, "date-range": [["2014-04-01", "2014-01-01"]]},
                                                   "date-range[0] 2014-04-01..2014-01-01 ends on or before it starts"),
    "spec: study name climbs out": spec_case({**SPEC, "study_name": "../../escape"}, "study"),
    "spec: study name blank": spec_case({**SPEC, "study_name": "  "}, "must be a non-empty string"),
    "spec: grid too large for a command line": spec_case(
        {"architecture": "quadratic", "parameters": {"x": [i / 7 for i in range(60_000)], "y": [0.5, 1.5]}},
        "grid of 120000 points"),
    "spec: a value too long for a command line": spec_case(
        {"architecture": "quadratic", "parameters": {"x": [1, 2]}, "overrides": {"params.noise": "9" * 200_000}},
        "too long"),
    "spec: file missing": Case(["spec", "nowhere.json"], "cannot read experiment spec 'nowhere.json'"),
    "spec: a folder": Case(["spec", "mlruns"], "cannot read experiment spec 'mlruns'"),
    "spec: no file given": Case(["spec"], "no experiment spec given"),
    "spec: password in an override": spec_case(
        {**LSTM_SPEC, "overrides": {"hydra.sweeper.storage": "postgresql://u:hunter2@h/db"}},
        "hydra.sweeper.storage: the URL contains a password"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_file(project_copy: Project, case: Case) -> None:
    check(project_copy, case)
