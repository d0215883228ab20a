"""Which formats go to the sandbox, the read roots' overlap check, the settings rule, and failing closed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelpress_core.config import Settings
from modelpress_core.errors import SandboxUnavailable
from worker.sandbox import landlock, policy, probe


def test_only_formats_that_carry_code_run_in_the_sandbox():
    assert policy.runs_user_code("torchscript")
    assert not policy.runs_user_code("safetensors")


def test_read_roots_hold_the_interpreter_but_not_proc_broadly():
    roots = policy.read_roots()
    assert any(sys.prefix.startswith(r) or r == sys.prefix for r in roots)
    assert "/proc" not in roots and "/" not in roots and "/etc" not in roots and "/tmp" not in roots


def test_a_data_dir_inside_a_read_root_is_reported(tmp_path):
    inside = Path(sys.prefix) / "modelpress-data"
    assert policy.exposed({"data dir": inside})
    assert policy.exposed({"data dir": tmp_path}) == []


def test_sandbox_off_needs_the_loud_opt_in():
    with pytest.raises(ValidationError, match="ALLOW_UNSANDBOXED_MODELS"):
        Settings(sandbox="off")
    assert Settings(sandbox="off", allow_unsandboxed_models=True).sandbox == "off"


def test_an_overlapping_data_dir_makes_the_sandbox_unavailable():
    status = probe.check(Settings(data_dir=Path(sys.prefix) / "modelpress-data"))
    assert not status.allowed and not status.confine and "overlaps the data dir" in status.reason
    opted_in = probe.check(Settings(data_dir=Path(sys.prefix) / "modelpress-data", allow_unsandboxed_models=True))
    assert opted_in.allowed and not opted_in.confine and opted_in.scrub_env


@pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")
def test_the_probe_confines_a_real_child_here(tmp_path):
    assert probe.check(Settings(data_dir=tmp_path)) == probe.SandboxStatus(confine=True, scrub_env=True, allowed=True, reason="")


def test_an_untrusted_job_fails_closed_when_the_sandbox_is_unavailable(tmp_path, monkeypatch):
    from modelpress_core.spec import JobSpec
    from worker.sandbox.runner import run_sandboxed

    monkeypatch.setattr(probe, "_status", probe.SandboxStatus(confine=False, scrub_env=True, allowed=False, reason="no Landlock"))
    spec = JobSpec.model_validate({"model": {"format": "torchscript", "input": {"shape": [1, 4], "dtype": "float32"}},
                                   "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}]})
    with pytest.raises(SandboxUnavailable, match="no Landlock") as caught:
        run_sandboxed(spec, tmp_path / "m.pt", tmp_path, settings=Settings(data_dir=tmp_path), progress=None, say=None,
                      check_cancelled=lambda: None, data={})
    assert caught.value.to_problem()["type"].endswith("/sandbox-unavailable") and caught.value.status == 503
    assert not (tmp_path / "sandbox").exists()  # nothing was started
