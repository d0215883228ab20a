"""The worker's side of the sandbox with a real child: failures come back bounded, nothing outlives the call."""

from __future__ import annotations

import os

import pytest

from modelpress_core.config import Settings
from modelpress_core.errors import ModelpressError
from worker.sandbox import host, landlock, policy, protocol


def test_a_child_s_problem_type_is_kept_only_inside_the_namespace():
    kept = host.problem_error(protocol.Failure(type="https://modelpress.dev/problems/upload-invalid", title="T", detail="d", status=422))
    assert kept.to_problem() == {"type": "https://modelpress.dev/problems/upload-invalid", "title": "T", "status": 422, "detail": "d"}
    foreign = host.problem_error(protocol.Failure(type="https://evil.example/x", title="Click me", detail="d"))
    assert foreign.to_problem()["type"].endswith("/job-failed") and foreign.title == "The job failed"


@pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")
def test_a_failing_job_in_a_real_child_is_a_bounded_problem_and_leaves_no_process(tmp_path):
    work = tmp_path / "sandbox"
    work.mkdir()
    request = protocol.Request(spec={"model": {"format": "torchscript"}, "steps": "x" * 10_000}, model_path="/nonexistent",
                               data={}, work_dir=str(work), warmup=0, runs=1, input_sha256="", data_sha256={}, threads=1,
                               read=policy.read_roots(), list_only=policy.listing_roots(),
                               read_write_files=list(policy.SYSTEM_READ_WRITE_FILES))
    env = host.child_environment(work, scrub=True, threads=1, settings=Settings(data_dir=tmp_path))
    seen, pids = [], []
    with pytest.raises(ModelpressError) as caught:
        host.run_child(request, env, on_message=lambda message, _: seen.append(message), watch=pids.append)
    assert caught.value.slug == "job-failed" and "ValidationError" in caught.value.detail
    assert len(caught.value.detail) <= protocol.MAX_DETAIL_CHARS
    assert [type(m) for m in seen] == [protocol.Ready] and seen[0].confined and seen[0].network_isolated
    child_pid = pids[0]
    assert pids == [child_pid, None]  # the memory guard was told, then untold
    assert not os.path.exists(f"/proc/{child_pid}")  # killed and reaped
