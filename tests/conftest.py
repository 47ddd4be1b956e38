"""Shared fixtures: the real program run under Pulumi mocks (tools/mockrun.py) with the real stack files."""

from __future__ import annotations

import functools
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


needs_reference = pytest.mark.skipif(not conformance.REFERENCE.is_dir(), reason=conformance.SKIP_REASON)
