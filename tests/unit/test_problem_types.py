"""Every problem type is a class in modelpress_core/errors.py; nothing builds a problem by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelpress_core import errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("modelpress_core", "modelpress_torch", "service", "worker", "modelpress")


def _sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_problem_type_url_outside_the_errors_module():
    hand_built = [f"{p.relative_to(ROOT)}:{n}" for p in _sources() if p.name != "errors.py" or p.parent.name != "modelpress_core"
                  for n, line in enumerate(p.read_text().splitlines(), 1) if "modelpress.dev/problems" in line]
    assert hand_built == []


def test_no_problem_class_outside_the_errors_module_and_no_ad_hoc_slug():
    classes = re.compile(r"^class \w+\((ModelpressError|NotFound|Conflict|Gone|InvalidSpec|InvalidUpload|UnsafeUpload|"
                         r"UnsupportedUpload|UploadTooLarge|TooManyJobs|RateLimited|Unavailable|SandboxFailed|Unauthorized)\)", re.M)
    found = [str(p.relative_to(ROOT)) for p in _sources() if p.name != "errors.py" and classes.search(p.read_text())]
    ad_hoc = [str(p.relative_to(ROOT)) for p in _sources() if p.name != "errors.py" and re.search(r"\bslug=\"", p.read_text())]
    assert found == [] and ad_hoc == []


def _all_classes():
    seen, todo = [], [errors.ModelpressError]
    while todo:
        c = todo.pop()
        seen.append(c)
        todo += [s for s in c.__subclasses__() if s.__module__ == errors.__name__]
    return seen


@pytest.mark.parametrize("cls", _all_classes(), ids=lambda c: c.__name__)
def test_each_class_renders_a_bounded_problem_and_is_found_by_its_slug(cls):
    problem = cls("x" * 10_000).to_problem()
    assert problem["type"] == errors.PROBLEM_BASE + cls.slug and problem["status"] == cls.status and problem["title"] == cls.title
    assert len(problem["detail"]) <= errors.MAX_DETAIL_CHARS
    assert issubclass(cls, errors.problem_class(cls.slug))
    assert cls.slug in errors.__doc__, "the hierarchy in the module docstring names every problem type"


def test_an_unknown_slug_has_no_class():
    assert errors.problem_class("made-up") is None
