"""At worker start: can this host confine user model code? Decides, once, how untrusted formats run.

The probe starts a real child with a probe request: it confines itself exactly as a job's child
would (network namespace, Landlock) and answers Ready, or says why it could not. Before that, the
read roots are checked against the data dir, the artifact store and the Redis dir: a root that
overlaps one (a venv inside the data dir, say) would expose it, so the sandbox counts as unavailable.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from celery.utils.log import get_logger

from worker.sandbox import host, policy, protocol

log = get_logger("modelpress.sandbox")  # under celery's logger: shown in the worker log (the root logger is not hijacked)

PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SandboxStatus:
    confine: bool  # the child confines itself (Landlock + network namespace)
    scrub_env: bool  # the child gets the minimal environment
    allowed: bool  # untrusted formats may run at all
    reason: str  # why it is not confined ("" when it is)


_status: SandboxStatus | None = None


def forbidden_paths(settings) -> dict[str, Path]:
    return {"data dir": Path(settings.data_dir), "artifact store": settings.artifacts_path,
            "Redis dir": Path(settings.data_dir) / "redis"}


def probe_child() -> str:
    """Start a child that confines itself and exits; '' when it did, else the reason it could not."""
    with tempfile.TemporaryDirectory(prefix="modelpress-sandbox-probe-") as work:
        request = protocol.Request(spec={}, model_path="", data={}, work_dir=work, warmup=0, runs=0, input_sha256="",
                                   data_sha256={}, threads=1, read=policy.read_roots(), list_only=policy.listing_roots(),
                                   read_write_files=list(policy.SYSTEM_READ_WRITE_FILES), probe=True)
        env = host.child_environment(Path(work), scrub=True, threads=1, settings=_Defaults())
        deadline = time.monotonic() + PROBE_TIMEOUT_S

        def too_slow() -> None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the probe child did not answer within {PROBE_TIMEOUT_S:g} s")

        try:
            ready = host.run_child(request, env, on_message=lambda *a: None, check_cancelled=too_slow)
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"
    if not (isinstance(ready, protocol.Ready) and ready.confined and ready.network_isolated and ready.landlock_abi >= 1):
        return f"the probe child did not confine itself ({ready})"
    return ""


class _Defaults:  # the probe runs no pipeline: placeholder values for the settings a child receives
    search_max_seconds = sensitivity_max_layers = sensitivity_max_samples = 0
    torchscript_op_check = True


def check(settings) -> SandboxStatus:
    if settings.sandbox == "off":
        return SandboxStatus(confine=False, scrub_env=False, allowed=settings.allow_unsandboxed_models,
                             reason="MODELPRESS_SANDBOX=off")
    problems = policy.exposed(forbidden_paths(settings))
    if not problems and (why := probe_child()):
        problems.append(why)
    if not problems:
        return SandboxStatus(confine=True, scrub_env=True, allowed=True, reason="")
    return SandboxStatus(confine=False, scrub_env=True, allowed=settings.allow_unsandboxed_models, reason="; ".join(problems))


def startup_check(settings) -> SandboxStatus:
    """Probe and remember the answer for this process (and the pool processes forked from it)."""
    global _status
    _status = check(settings)
    return _status


def report_sandbox(settings) -> SandboxStatus:
    """Say in the worker's log how user model code runs here: a WARNING when unconfined, an ERROR when refused."""
    status = current(settings)
    formats = ", ".join(policy.UNTRUSTED_FORMATS)
    if status.confine:
        log.info("sandbox: user model code (%s) runs in a confined child", formats)
    elif status.allowed:
        log.warning("SANDBOX DISABLED: user model code (%s) runs UNCONFINED in this worker's child processes, because "
                    "MODELPRESS_ALLOW_UNSANDBOXED_MODELS=true (%s). An upload can read and write what this worker can.",
                    formats, status.reason)
    else:
        log.error("sandbox unavailable: jobs with %s models will fail with sandbox-unavailable (%s)", formats, status.reason)
    return status


def current(settings) -> SandboxStatus:
    return _status if _status is not None else startup_check(settings)
