"""The dashboard in a real headless Chromium (its JavaScript runs): live job list, live job page."""

from __future__ import annotations

import re
import os
import shutil
import subprocess

import pytest

from tests.integration.helpers import spec, submit, wait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# CI installs chromium (.ci/run) and must run these; elsewhere they are skipped without it.
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs chromium (apt-get install chromium)")


def rendered_dom(url: str, tmp_path, budget_ms: int = 6000) -> str:
    """The DOM after the page's scripts ran for ``budget_ms`` of virtual time."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'chromium'}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_dashboard_lists_jobs_and_the_job_page_follows_events(stack, api, digits_mlp_path, tmp_path):
    job = wait(api, submit(api, digits_mlp_path, spec({"method": "quantize", "kind": "dynamic_int8"})).json()["id"])
    assert job["state"] == "succeeded"

    page = rendered_dom(f"{stack.base_url}/ui", tmp_path)
    row = re.search(rf'<tr data-id="{job["id"]}">.*?</tr>', page, flags=re.S)
    assert row and "succeeded" in row.group(0) and "quantize" in row.group(0)
    assert re.search(r'<tbody id="jobs" data-refreshed="', page)  # the live refresh ran
    assert '<form id="submit"' in page and 'name="model"' in page

    page = rendered_dom(f"{stack.base_url}/ui/jobs/{job['id']}", tmp_path)
    assert 'id="state" class="state succeeded"' in page
    assert 'data-stream="ended"' in page  # the EventSource got the end event
    assert f'href="/jobs/{job["id"]}/report"' in page and "model.torchscript.pt" in page
    log = re.search(r'<pre id="log">(.*?)</pre>', page, flags=re.S).group(1)
    assert "attempt 1 on worker" in log and "succeeded: model.torchscript.pt" in log
    assert api.get("/ui/jobs/j_nope").status_code == 404


def test_job_page_opened_right_after_submit_ends_with_the_job(stack, api, digits_mlp_path, tmp_path):
    """Opened while the job is queued or running (or, on a fast machine, already done), the page
    follows the event stream to the end and shows the outcome."""
    job = submit(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 0.5},
                                            evaluate={"latency": True, "batch_sizes": [1, 64, 256]})).json()
    page = rendered_dom(f"{stack.base_url}/ui/jobs/{job['id']}", tmp_path, budget_ms=60000)
    shown = re.findall(r'<(?:span|div|p) id="(?:state|fill|message)".*?>.*?</(?:span|div|p)>', page, flags=re.S)
    assert 'data-stream="ended"' in page, shown
    assert api.get(f"/jobs/{job['id']}").json()["state"] == "succeeded"
    assert 'id="state" class="state succeeded"' in page and re.search(r'id="fill" style="width:\s*100%', page), shown
    assert f'/jobs/{job["id"]}/report"' in page
    log = re.search(r'<pre id="log">(.*?)</pre>', page, flags=re.S).group(1)
    assert "succeeded: " in log
