"""The sandbox pipe protocol: typed messages, a size cap per line, and no trust in the child's fields."""

from __future__ import annotations

import json
import os

import pytest

from worker.sandbox import protocol


def test_messages_round_trip():
    for message in (protocol.Ready(landlock_abi=7, network_isolated=True, confined=True),
                    protocol.Progress(phase="loading", step=None, fraction=0.5, message="m"),
                    protocol.Log(message="hello", level="warning"),
                    protocol.Result(outputs=[protocol.OutputFile("model.onnx", "onnx", "application/onnx", "model.onnx")],
                                    metrics={"a": 1}, summary={"b": 2}),
                    protocol.Failure(type="https://modelpress.dev/problems/job-failed", title="t", detail="d")):
        assert protocol.parse(protocol.encode(message).rstrip(b"\n")) == message


def test_the_request_crosses_a_pipe():
    request = protocol.Request(spec={"x": 1}, model_path="/m", data={"eval": ["/e", "npz"]}, work_dir="/w", warmup=1, runs=2,
                               input_sha256="h", data_sha256={}, threads=0, read=["/usr/lib"] * 5000)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        protocol.write(w, request)
        os._exit(0)
    os.close(w)
    try:
        assert protocol.read_request(r) == request
    finally:
        os.close(r)
        os.waitpid(pid, 0)


def test_a_line_over_the_cap_is_refused_before_its_newline():
    reader = protocol.LineReader(limit=100)
    assert reader.feed(b'{"kind":"log","message":"a"}\n{"kind"') == [b'{"kind":"log","message":"a"}']
    with pytest.raises(protocol.ProtocolError):
        reader.feed(b"x" * 200)


def test_the_detail_of_a_failure_is_capped():
    line = json.dumps({"kind": "error", "type": "t", "title": "t", "detail": "s" * 100_000, "status": 200}).encode()
    failure = protocol.parse(line)
    assert len(failure.detail) == protocol.MAX_DETAIL_CHARS and failure.status == 500


@pytest.mark.parametrize("line", [b"not json", b"[1]", b'{"kind":"shell"}', b'{"kind":"progress","phase":1}',
                                  b'{"kind":"result","outputs":{},"metrics":{},"summary":{}}',
                                  b'{"kind":"progress","phase":"p","fraction":"x","message":"m"}'])
def test_malformed_messages_are_protocol_errors(line):
    with pytest.raises(protocol.ProtocolError):
        protocol.parse(line)


def test_progress_fraction_is_clamped():
    assert protocol.parse(b'{"kind":"progress","phase":"p","step":null,"fraction":7,"message":"m"}').fraction == 1.0
