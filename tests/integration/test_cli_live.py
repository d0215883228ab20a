"""The CLI and SDK on the live features: submit --wait over SSE, logs, report, exit codes."""

from __future__ import annotations

import json

from modelpress.cli import EXIT_API_ERROR, EXIT_OK, EXIT_UNREACHABLE, main
from modelpress.client import ModelpressClient
from modelpress.redis_server import free_port
from tests.integration.helpers import spec

INT8 = {"method": "quantize", "kind": "dynamic_int8"}


def test_submit_wait_logs_report(stack, digits_mlp_path, digits_test_set, tmp_path, capsys):
    import numpy as np

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec(INT8)))
    eval_file = tmp_path / "eval.npz"
    x_test, y_test = digits_test_set
    np.savez(eval_file, inputs=np.asarray(x_test[:100], np.float32), labels=np.asarray(y_test[:100], np.int64))
    url = ["--url", stack.base_url]
    assert main(["submit", str(digits_mlp_path), "--spec", str(spec_file), "--eval", str(eval_file), "--wait", *url]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "100%" in err and "succeeded" in err  # the progress bar, fed by the event stream
    assert "verdict: " in out and "x smaller" in out
    assert "top-1 accuracy " in out and "95% CI" in out  # the eval set went along
    job_id = out.split(":", 1)[0].strip()

    assert main(["logs", job_id, *url]) == EXIT_OK
    out, _ = capsys.readouterr()
    assert "attempt 1 on worker" in out and "succeeded: model.torchscript.pt" in out
    assert main(["logs", job_id, "--json", "--tail", "1", *url]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["message"].startswith("succeeded")

    report = tmp_path / "r.html"
    assert main(["report", job_id, "-o", str(report), "--json", *url]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["path"] == str(report)
    assert report.read_text().count("<svg") == 4  # + MACs

    with ModelpressClient(stack.base_url) as client:  # the SDK
        events = list(client.events(job_id))
        assert [e["event"] for e in events] == ["state", "end"] and events[-1]["state"] == "succeeded"
        assert client.logs(job_id, tail=2)[-1]["level"] == "info"
        assert "<svg" in client.report(job_id)

    assert main(["submit", str(digits_mlp_path), "--spec", str(spec_file), "--wait", "--json", *url]) == EXIT_OK
    body = json.loads(capsys.readouterr().out)
    assert body["state"] == "succeeded" and body["verdict"]["smaller"] is True


def test_exit_codes_for_api_errors_and_no_server(stack, capsys):
    assert main(["status", "j_nope", "--url", stack.base_url]) == EXIT_API_ERROR
    assert main(["logs", "j_nope", "--url", stack.base_url]) == EXIT_API_ERROR
    assert main(["status", "j_nope", "--url", f"http://127.0.0.1:{free_port()}"]) == EXIT_UNREACHABLE
    capsys.readouterr()
