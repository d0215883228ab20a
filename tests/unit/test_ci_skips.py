"""The CI guard (tests/ci_skips.py): under CI every kind of skip fails the run, except allowed_skip and xfail."""

from __future__ import annotations

import pytest

SKIPPING = '''
import pytest

def test_skip_call():
    pytest.skip("no chromium")

@pytest.mark.skipif(True, reason="no docker-compose")
def test_skipif():
    pass

def test_importorskip():
    pytest.importorskip("a_module_that_is_not_installed_anywhere")

@pytest.mark.allowed_skip(reason="a device CI has not")
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=pytest.mark.skipif(True, reason="no GPU")), "cpu"])
def test_parametrized_out(device):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_xfail():
    assert False

def test_runs():
    pass
'''

MODULE_LEVEL = '''
import pytest
pytest.importorskip("a_module_that_is_not_installed_anywhere")

def test_never_collected():
    pass
'''


@pytest.fixture
def run(pytester, monkeypatch):
    def run(source: str, ci: str | None):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        pytester.makepyfile(test_inner=source)
        return pytester.runpytest_inprocess("-p", "tests.ci_skips", "-p", "no:cacheprovider", "-q")
    return run


def test_under_ci_every_skip_fails_but_allowed_and_xfail(run):
    result = run(SKIPPING, "1")
    result.assert_outcomes(failed=2, errors=1, passed=2, skipped=1, xfailed=1)  # a skipif fails at setup: an error
    result.stdout.fnmatch_lines(["*skipped under CI, which counts as a failure: *no chromium*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_outside_ci_skips_stay_skips(run, ci):
    result = run(SKIPPING, ci)
    result.assert_outcomes(passed=2, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_under_ci_a_module_level_skip_is_a_collection_error(run):
    result = run(MODULE_LEVEL, "true")
    result.assert_outcomes(errors=1)
    assert result.ret != pytest.ExitCode.OK


def test_outside_ci_a_module_level_skip_is_a_skip(run):
    result = run(MODULE_LEVEL, None)
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED or result.ret == pytest.ExitCode.OK
