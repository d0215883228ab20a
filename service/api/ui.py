"""The web dashboard: server-rendered HTML plus a little inline JavaScript, no build step.

`/ui` lists jobs (states refreshed live), with a submit form; `/ui/jobs/{id}` follows one job over
its event stream and links its report, metrics and downloads. Everything it shows comes from the
public API, so the dashboard can do nothing a client cannot.

With auth on, the pages are shells: the browser keeps an API key in sessionStorage (typed into the
key field, or passed once as ``/ui#key=mp_...``; a fragment never reaches the server or its logs)
and the scripts send it as ``Authorization: Bearer``. With a key the event stream is read with
``fetch`` (an ``EventSource`` cannot send headers; without a key it is a plain ``EventSource``), and
downloads are fetched with the key, then saved as blobs.

The pages are Jinja2 templates with autoescape (``service/templates/ui/``); the scripts and the
style sheet are template files too, so no value from a job record is ever pasted into markup.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.api.access import unauthenticated_tenant
from service.templating import render
from modelpress_core.job import JobRecord
from modelpress_core.storage.jobs import JobRepository, TenantJobs

router = APIRouter(tags=["ui"], include_in_schema=False)

EXAMPLE_SPEC = {
    "model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
              "input": {"shape": [1, 784], "dtype": "float32"}},
    "steps": [{"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9},
              {"method": "quantize", "kind": "dynamic_int8"}],
    "outputs": ["torchscript"],
}


def _local_jobs(request: Request) -> TenantJobs | None:
    """Auth off: the server renders tenant ``local``'s data, to loopback clients only (the API's own rule:
    anyone else gets its 401). Auth on: None; the page's scripts fetch the data with the key."""
    tenant = unauthenticated_tenant(request)
    if tenant is None:
        return None
    return TenantJobs(JobRepository(request.app.state.redis), tenant)


def _row(r: JobRecord) -> dict[str, str]:
    return {"id": r.id, "state": r.state.value, "progress": f"{r.progress.fraction:.0%} {r.progress.message}",
            "steps": " → ".join(str(s.get("method", "?")) for s in r.spec.get("steps", [])),
            "created": f"{r.created_at:%Y-%m-%d %H:%M:%S}"}


@router.get("/ui", response_class=HTMLResponse)
def ui_jobs(request: Request) -> HTMLResponse:
    jobs = _local_jobs(request)
    rows = [_row(r) for r in jobs.list(limit=50)[0]] if jobs else []
    return HTMLResponse(render("ui/jobs.html", shell=jobs is None, rows=rows, example_spec=json.dumps(EXAMPLE_SPEC, indent=2),
                               body_data={"auth": "1"} if jobs is None else {}))


def _job_view(r: JobRecord, jobs: TenantJobs) -> dict:
    return {
        "state": r.state.value, "percent": f"{r.progress.fraction:.0%}", "phase": r.progress.phase, "message": r.progress.message,
        "succeeded": r.state.value == "succeeded",
        "summary": ", ".join(f"{k}={v}" for k, v in (r.summary or {}).items()),
        "artifacts": [{"name": a.name, "size": f"{a.bytes:,}", "sha_prefix": a.sha256[:12]} for a in r.artifacts],
        "error": json.dumps(r.error, indent=2) if r.error else "",
        "spec": json.dumps(r.spec, indent=2),
        "log": "".join(f"{line['ts'][11:19]} {line['level']} {line['message']}\n" for line in jobs.logs(r.id)),
    }


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def ui_job(job_id: str, request: Request) -> HTMLResponse:
    jobs = _local_jobs(request)
    if jobs is None:
        return HTMLResponse(render("ui/job.html", shell=True, job_id=job_id, root="", job=None,
                                   body_data={"job": job_id, "auth": "1"}))
    r = jobs.get(job_id)
    return HTMLResponse(render("ui/job.html", shell=False, job_id=r.id, root=f"/jobs/{r.id}", job=_job_view(r, jobs),
                               body_data={"job": r.id}))
