"""The dashboard in a real headless Chromium (its JavaScript runs): live job list, live job page."""

from __future__ import annotations

import re
import os
import shutil
import subprocess

import pytest

from tests.integration.helpers import spec, submit, wait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
# CI installs chromium and chromium-driver (.ci/run) and must run these; elsewhere they are skipped without them.
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs chromium (apt-get install chromium)")
needs_webdriver = pytest.mark.skipif(CHROMEDRIVER is None and not os.environ.get("CI"),
                                     reason="needs chromedriver (apt-get install chromium-driver)")


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


@pytest.fixture
def browser(tmp_path):
    """A real headless Chromium driven over WebDriver (selenium + the system chromedriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900",
                f"--user-data-dir={tmp_path / 'chromium-wd'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@needs_webdriver
def test_submit_from_the_dashboard_form_and_open_the_report(stack, api, browser, digits_mlp_path, digits_test_set, tmp_path):
    """The dashboard's submit form (model file, spec editor seeded from /capabilities, an eval data
    file), the job page following it to succeeded, and its report with the plots rendered."""
    import json

    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    x_test, y_test = digits_test_set
    eval_file = tmp_path / "eval.npz"
    np.savez(eval_file, inputs=np.asarray(x_test, np.float32), labels=np.asarray(y_test, np.int64))

    browser.get(f"{stack.base_url}/ui")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "step-kind").get_attribute("data-loaded"))
    browser.find_element(By.ID, "clear-steps").click()
    picker = Select(browser.find_element(By.ID, "step-kind"))
    for key in ("prune:structured", "quantize:dynamic_int8"):
        picker.select_by_value(key)
        browser.find_element(By.ID, "add-step").click()
    spec_text = browser.find_element(By.ID, "spec").get_attribute("value")
    assert [(s["method"], s["kind"]) for s in json.loads(spec_text)["steps"]] == [("prune", "structured"), ("quantize", "dynamic_int8")]
    assert json.loads(spec_text)["steps"][0]["amount"] == 0.5  # seeded from the step's schema
    browser.find_element(By.NAME, "model").send_keys(str(digits_mlp_path))
    browser.find_element(By.NAME, "eval").send_keys(str(eval_file))
    browser.find_element(By.ID, "submit-button").click()

    WebDriverWait(browser, 30).until(lambda d: "/ui/jobs/" in d.current_url)
    job_id = browser.current_url.rsplit("/", 1)[1]
    WebDriverWait(browser, 180).until(lambda d: d.find_element(By.ID, "state").text in ("succeeded", "failed"))
    assert browser.find_element(By.ID, "state").text == "succeeded", api.get(f"/jobs/{job_id}").json().get("error")
    job = api.get(f"/jobs/{job_id}").json()
    assert [i["name"].split(".")[0] for i in job["inputs"]][1:] == ["eval"]  # the empty data inputs were not sent

    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.LINK_TEXT, "report"))
    browser.find_element(By.LINK_TEXT, "report").click()
    WebDriverWait(browser, 30).until(lambda d: d.current_url.endswith(f"/jobs/{job_id}/report"))
    svgs = browser.find_elements(By.TAG_NAME, "svg")
    titles = [svg.find_element(By.TAG_NAME, "title").get_attribute("textContent") for svg in svgs]
    assert titles == ["Layer size", "Layer sparsity", "Latency p50 by batch size", "Multiply-accumulates per forward pass"]
    for svg in svgs:  # laid out and painted: real boxes with drawn bars
        assert svg.size["width"] > 300 and svg.size["height"] > 30
        bars = svg.find_elements(By.TAG_NAME, "rect")
        assert bars and all(float(b.get_attribute("width")) > 0 for b in bars)
        assert browser.execute_script("return arguments[0].getBBox().width", bars[0]) > 0
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "top-1 accuracy (360 labelled eval items)" in text and "95% CI" in text
    assert "fewer" in text  # structured pruning: fewer MACs
    assert "p99" in text and "samples/s" in text and "peak RSS growth" in text


@needs_webdriver
def test_job_page_opened_right_after_submit_ends_with_the_job(stack, api, browser, digits_mlp_path):
    """Opened while the job is queued or running (or, on a fast machine, already done), the page
    follows the event stream to the end and shows the outcome. (A real browser waited on in real
    time: chromium --dump-dom's virtual-time budget can end before a slow job on a busy host does.)"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    job = submit(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 0.5},
                                            evaluate={"latency": True, "batch_sizes": [1, 64, 256]})).json()
    browser.get(f"{stack.base_url}/ui/jobs/{job['id']}")
    WebDriverWait(browser, 180).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-stream") == "ended")
    assert api.get(f"/jobs/{job['id']}").json()["state"] == "succeeded"
    assert browser.find_element(By.ID, "state").get_attribute("class") == "state succeeded"
    assert browser.find_element(By.ID, "fill").value_of_css_property("width") == browser.find_element(By.CLASS_NAME, "bar").value_of_css_property("width")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'a[href$="/jobs/{job["id"]}/report"]'))
    assert "succeeded: " in browser.find_element(By.ID, "log").text
