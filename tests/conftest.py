"""Shared fixtures: the real program run under Pulumi mocks (tools/mockrun.py) with the real stack files."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import conformance  # noqa: E402
from tools import mockrun  # noqa: E402


@functools.lru_cache(maxsize=None)
def _plan(stack: str, overrides: tuple[str, ...]) -> mockrun.Plan:
    return mockrun.run(stack, list(overrides))


def plan_for(*overrides: str, stack: str = "dev") -> mockrun.Plan:
    """The plan of a stack with `KEY=VALUE` overrides; cached, so each config runs once per session."""
    return _plan(stack, tuple(overrides))


@pytest.fixture(scope="session")
def dev_plan() -> mockrun.Plan:
    plan = plan_for()
    assert plan.error is None, plan.error
    return plan


# CI (env CI=true) runs beside ../shared: there a missing prerequisite is a failure, never a silent skip.
CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """A prerequisite of the test is absent: skip it, or fail it in CI."""
    if CI:
        pytest.fail(f"{reason} (CI=true: a missing prerequisite fails the test)", pytrace=False)
    pytest.skip(reason)


def needs_dir(path: Path, reason: str) -> pytest.MarkDecorator:
    """Mark a test that needs the folder `path`: skipped when it is absent, failed in CI."""
    return pytest.mark.needs_dir(path, reason=reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_dir(path, reason): needs that folder; skipped without it, failed in CI")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_dir"):
        if not Path(mark.args[0]).is_dir():
            unavailable(mark.kwargs.get("reason") or f"{mark.args[0]} is absent")


needs_reference = needs_dir(conformance.REFERENCE, conformance.SKIP_REASON)
