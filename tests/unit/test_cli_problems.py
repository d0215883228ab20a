"""The CLI prints problems, not tracebacks: a missing file, a spec that is not JSON, a reader that closed
the pipe (`modelpress list | head -1`); and `modelpress status` shows the verdict line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelpress.cli import EXIT_API_ERROR, EXIT_BROKEN_PIPE, EXIT_OK, main
from tests.unit.fake_api import serve
from tests.unit.test_report import METRICS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"model": {"format": "safetensors"}, "steps": []}))
    return path


def test_submit_of_a_missing_model_is_one_error_line(spec_file, capsys):
    assert main(["submit", "missing.safetensors", "--spec", str(spec_file), "--url", "http://127.0.0.1:9"]) == EXIT_API_ERROR
    err = capsys.readouterr().err
    assert err == "error: No such file or directory: missing.safetensors\n"


def test_a_missing_spec_or_data_file_and_a_spec_that_is_not_json(spec_file, tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    assert main(["submit", str(model), "--spec", str(tmp_path / "nope.json")]) == EXIT_API_ERROR
    assert capsys.readouterr().err == f"error: No such file or directory: {tmp_path / 'nope.json'}\n"
    assert main(["submit", str(model), "--spec", str(spec_file), "--eval", "eval.npz", "--url", "http://127.0.0.1:9"]) == EXIT_API_ERROR
    assert capsys.readouterr().err == "error: No such file or directory: eval.npz\n"
    bad = tmp_path / "bad.json"
    bad.write_text("{steps: [")
    assert main(["submit", str(model), "--spec", str(bad)]) == EXIT_API_ERROR
    assert capsys.readouterr().err.startswith("error: the spec file is not valid JSON: ")


def test_a_closed_pipe_ends_quietly():
    """stdout is a pipe whose reader is already gone, so the first write fails: no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    try:
        result = subprocess.run([sys.executable, "-m", "tests.unit.fake_api", "list", "--limit", "2000"], cwd=ROOT, env=env,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == EXIT_BROKEN_PIPE, result.stderr
    assert result.stderr == ""


def test_status_shows_the_verdict_line_and_warnings(capsys):
    job = {"id": "j_1", "state": "succeeded", "summary": {"size_ratio": 3.82}}
    server = serve({"/jobs/j_1": job, "/jobs/j_1/metrics": METRICS})
    try:
        assert main(["status", "j_1", "--url", f"http://127.0.0.1:{server.server_port}"]) == EXIT_OK
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "j_1: succeeded"
        assert out[2].startswith("verdict: 3.82x smaller, 0.80x speed (not faster)")
        assert out[3] == "warning: not faster: the artifact ran at 0.80x"
        assert main(["status", "j_1", "--json", "--url", f"http://127.0.0.1:{server.server_port}"]) == EXIT_OK
        assert json.loads(capsys.readouterr().out)["verdict"]["size_ratio"] == 3.82
    finally:
        server.shutdown()
