"""Under CI (the ``CI`` environment variable, which ``.ci/run`` exports), a skipped test is a failure.

A test that cannot run in CI has a missing dependency, and a green run that skipped it proves
nothing. This covers every way a test skips: ``pytest.skip``, ``skipif`` marks, ``importorskip`` in a
test, and module-level skips at collection (which become collection errors).

The only exception is a test marked ``@pytest.mark.allowed_skip(reason=...)`` (for example a case
parametrized over devices that CI does not have); its skip stays a skip. xfail is not a skip.
"""

from __future__ import annotations

import os

import pytest

MARKER = "allowed_skip"


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _reason(longrepr) -> str:
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}(reason): this test may skip even under CI (say why)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and under_ci() and item.get_closest_marker(MARKER) is None:
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI, which counts as a failure: {_reason(report.longrepr)} "
                           f"(install what it needs, or mark it @pytest.mark.{MARKER}(reason=...) if CI legitimately cannot run it)")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and under_ci():
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid} skipped at collection under CI, which counts as a failure: {_reason(report.longrepr)}"
