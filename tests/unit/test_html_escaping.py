"""The dashboard and the report are Jinja2 templates with autoescape: a hostile job or architecture
name is shown as text, never run as markup."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

from modelpress_core.job import ArtifactInfo, JobRecord, JobState, Progress
from service.api.ui import _job_view, _row
from service.report import render_report
from service.templating import render
from tests.unit.test_report import JOB, METRICS

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class LogsOnly:  # the one TenantJobs method _job_view reads
    def logs(self, job_id):
        return [{"ts": "2026-11-30T10:00:00Z", "level": "info", "message": f"loaded {HOSTILE}"}]


def hostile_record() -> JobRecord:
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    return JobRecord(
        id="j_x", state=JobState.succeeded, created_at=now, updated_at=now,
        spec={"model": {"format": "safetensors", "architecture": HOSTILE}, "steps": [{"method": HOSTILE}]},
        progress=Progress(phase="done", fraction=1.0, message=HOSTILE),
        artifacts=[ArtifactInfo(name=f"{HOSTILE}.pt", format="torchscript", bytes=10, sha256="0" * 64)],
        error=None, summary={"architecture": HOSTILE},
    )


def test_dashboard_list_and_job_page_escape_a_hostile_architecture_name():
    record = hostile_record()
    page = render("ui/jobs.html", shell=False, rows=[_row(record)], example_spec="{}", body_data={})
    job_page = render("ui/job.html", shell=False, job_id=record.id, root=f"/jobs/{record.id}",
                      job=_job_view(record, LogsOnly()), body_data={"job": record.id})
    for html in (page, job_page):
        assert HOSTILE not in html and ESCAPED in html
    assert job_page.count(ESCAPED) >= 5  # spec, progress, summary, artifact name, log line
    assert "<script>\nconst KEY" in job_page  # the page's own script is still there


def test_shell_page_escapes_the_job_id_from_the_path():
    html = render("ui/job.html", shell=True, job_id=f'j_"{HOSTILE}', root="", job=None, body_data={"job": f'j_"{HOSTILE}', "auth": "1"})
    assert HOSTILE not in html and 'data-job="j_&#34;&lt;script&gt;' in html


def test_report_escapes_a_hostile_job_id_architecture_and_notes():
    metrics = copy.deepcopy(METRICS)
    metrics["notes"] = [f"architecture {HOSTILE}"]
    metrics["steps"] = [{"step": 0, "label": HOSTILE, "seconds": 0.1}]
    metrics["provenance"]["input_sha256"] = {HOSTILE: HOSTILE}
    html = render_report({**JOB, "id": f"j_{HOSTILE}"}, metrics, links={HOSTILE: f'/x/"{HOSTILE}'})
    assert "<script" not in html
    assert html.count(ESCAPED) >= 6  # title, heading, layer label (chart and table), step, note, provenance
