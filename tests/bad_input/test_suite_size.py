"""The suite covers every kind of bad input, and holds as many cases as the README says."""

from __future__ import annotations

import re
from pathlib import Path

from bad_input import test_environment, test_files, test_overrides, test_secrets, test_subcommands, test_trainers

KINDS = {"overrides": test_overrides, "files": test_files, "environment": test_environment,
         "subcommands": test_subcommands, "trainers": test_trainers, "secrets": test_secrets}


def count_cases() -> int:
    """Table rows, the two not-MLflow web servers and the diverging trainers."""
    tables = sum(len(module.CASES) for module in KINDS.values())
    return tables + 2 + len(test_trainers.DIVERGING)


def test_every_kind_has_cases_and_the_readme_states_the_count() -> None:
    assert all(len(module.CASES) >= 10 for module in KINDS.values())
    total = count_cases()
    assert total >= 200
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    stated = re.search(r"bad-input suite \(tests/bad_input/\) holds (\d+) cases", readme)
    assert stated is not None, "README: the bad-input paragraph states the case count"
    assert int(stated.group(1)) == total
