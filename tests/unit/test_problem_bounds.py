"""Every problem is bounded (modelpress_core/errors.py bounded_problem), on each path a problem takes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient

from service.api.problems import install_problem_handler
from modelpress_core.config import Settings
from modelpress_core.errors import MAX_DETAIL_CHARS, MAX_LIST_ITEMS, InvalidSpec, ModelpressError, bounded_problem
from modelpress_core.job import JobRecord, JobState

HUGE = "A" * 158_000  # the size a reviewer got back


def assert_cut(detail: str) -> None:
    assert len(detail) <= MAX_DETAIL_CHARS
    assert detail.startswith("AAAA") and detail.endswith("shown]") and "cut: 158000 characters in all" in detail


def test_to_problem_cuts_the_detail_and_long_extras_with_a_marker():
    problem = InvalidSpec(HUGE, errors=[{"loc": "x" * 5000, "msg": "m", "type": "t"}] * 500).to_problem()
    assert_cut(problem["detail"])
    assert len(problem["errors"]) == MAX_LIST_ITEMS and problem["errors_omitted"] == 500 - MAX_LIST_ITEMS
    assert len(problem["errors"][0]["loc"]) <= 512 and "cut: 5000 characters" in problem["errors"][0]["loc"]
    assert len(json.dumps(problem)) < 40_000
    assert bounded_problem(problem) == problem  # idempotent: bounding twice changes nothing


def test_a_short_problem_is_left_exactly_as_it_was():
    problem = ModelpressError("short", slug="s", title="T", queue="gpu", errors=[{"loc": "a", "msg": "b"}]).to_problem()
    assert problem == {"type": "https://modelpress.dev/problems/s", "title": "T", "status": 500, "detail": "short",
                       "queue": "gpu", "errors": [{"loc": "a", "msg": "b"}]}


def test_the_problem_handler_bounds_what_leaves_over_http():
    app = FastAPI()
    install_problem_handler(app)

    @app.get("/boom")
    def boom():
        raise HTTPException(404, detail=HUGE)

    response = TestClient(app).get("/boom")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    assert_cut(response.json()["detail"])


def test_a_failed_jobs_problem_from_the_worker_is_bounded():
    from worker.tasks import _failure

    problem = _failure(RuntimeError(HUGE))
    assert problem["type"] == "https://modelpress.dev/problems/job-failed"
    assert len(problem["detail"]) <= MAX_DETAIL_CHARS and problem["detail"].startswith("RuntimeError: AAAA")
    assert_cut(_failure(InvalidSpec(HUGE))["detail"])


def _record(**fields) -> JobRecord:
    now = datetime.now(timezone.utc)
    return JobRecord(id="j_1", spec={}, created_at=now, updated_at=now, **fields)


def test_a_job_record_bounds_its_error_when_read_and_when_written():
    stored = _record(state=JobState.failed, error={"type": "t", "title": "x", "status": 500, "detail": HUGE})
    assert_cut(stored.error["detail"])  # a record written before errors were bounded, read back
    assigned = _record(state=JobState.running)
    assigned.error = {"type": "t", "detail": HUGE}  # a path that forgot to bound it
    assert_cut(json.loads(assigned.model_dump_json())["error"]["detail"])


class FakeJobs:
    """Just enough of JobRepository for the sweeper's lost-worker path: update() applies the change."""

    def __init__(self, record: JobRecord):
        self.record = record

    def update(self, job_id: str, change):
        change(self.record)
        return self.record


class FakeStore:
    def remove_area(self, job_id: str, area: str) -> None:
        pass


def test_the_sweepers_failure_is_bounded():
    from worker.sweeper import _lost

    record = _record(state=JobState.running, attempts=3, worker="w" * 20_000, worker_instance="i-1")
    jobs = FakeJobs(record)
    done = {"failed": [], "requeued": []}
    reason = f"the worker running this job ({record.worker}) stopped heartbeating"
    _lost(jobs, FakeStore(), Settings(max_attempts=3), record, lambda *_: None, done, reason)
    assert done["failed"] == ["j_1"] and record.state == JobState.failed
    detail = record.error["detail"]
    assert len(detail) <= MAX_DETAIL_CHARS and "cut: " in detail and detail.startswith("the worker running this job (www")
