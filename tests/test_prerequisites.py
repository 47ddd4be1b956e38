"""A missing prerequisite skips a test, saying why, on a developer's clone; with CI=true it fails, whichever way
the test asks to be skipped (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TESTS = '''
import pytest
from tests.conftest import needs_dir, unavailable

@needs_dir("/nonexistent/prerequisite", "the folder is absent")
def test_marked():
    pass

@pytest.mark.skipif(True, reason="a plain skipif")
def test_skipif():
    pass

def test_skip_call():
    pytest.skip("a pytest.skip call")

def test_unavailable():
    unavailable("a helper is absent")

@pytest.mark.xfail(reason="expected to fail", strict=True)
def test_xfail():
    assert False

def test_runs():
    pass
'''


@pytest.mark.parametrize("ci, expected", [("", "1 passed, 4 skipped, 1 xfailed"),
                                          ("true", "2 failed, 1 passed, 1 xfailed, 2 errors")])
def test_skips_fail_in_ci(tmp_path, ci, expected):
    (tmp_path / "test_prerequisite_cases.py").write_text(TESTS)
    env = {**os.environ, "CI": ci}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert expected in done.stdout, done.stdout + done.stderr
    if ci:  # failed (in setup: an error), each saying why
        for reason in ("the folder is absent", "a plain skipif", "a pytest.skip call", "a helper is absent"):
            assert reason in done.stdout
