"""Run one job's pipeline in a sandbox child: the counterpart of calling ``run_pipeline`` in-process.

Layout under the job's temporary directory (the worker's):

    <input files>             in the local artifact store, or fetched into <job dir> (S3): the child may read
                              exactly these files
    <job dir>/sandbox/        the child's work dir and HOME: the only place it may write
    <job dir>/collected/      the worker's checked copies of the child's outputs (the child never sees it)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from celery.utils.log import get_logger

from modelpress_core.errors import SandboxUnavailable
from modelpress_core.spec import JobSpec
from worker.pipeline import PipelineResult
from worker.sandbox import host, outputs, policy, probe, protocol

log = get_logger("modelpress.sandbox")  # under celery's logger: shown in the worker log (the root logger is not hijacked)


def run_sandboxed(spec: JobSpec, model_path: Path, job_dir: Path, *, settings, progress, say: Callable[..., None],
                  check_cancelled: Callable[[], None], watch: Callable[[int | None], None] = lambda pid: None,
                  data: dict[str, tuple[Path, str]], **pipeline: object) -> PipelineResult:
    status = probe.current(settings)
    if not status.allowed:
        raise SandboxUnavailable(
            f"this worker cannot confine {spec.model.format} models ({status.reason[:500]}); they run only in a sandbox "
            "unless the operator sets MODELPRESS_ALLOW_UNSANDBOXED_MODELS=true (see docs/sandbox.md)")
    if not status.confine:
        say(f"sandbox off: the {spec.model.format} model runs unconfined ({status.reason[:200]})", "warning")
    work_dir = job_dir / "sandbox"
    work_dir.mkdir()
    inputs = [str(model_path)] + [str(path) for path, _ in data.values()]
    release = pipeline.pop("delay_release", None)  # test-only: the child may read the folder of the release file
    if release is not None:
        pipeline["delay_release"] = str(release)
        inputs.append(str(Path(release).parent))
    request = protocol.Request(
        spec=spec.model_dump(mode="json"), model_path=str(model_path), data={k: [str(p), f] for k, (p, f) in data.items()},
        work_dir=str(work_dir), threads=settings.worker_threads, confine=status.confine,
        read=policy.read_roots() + inputs, list_only=policy.listing_roots(),
        read_write_files=list(policy.SYSTEM_READ_WRITE_FILES), **pipeline,
    )
    env = host.child_environment(work_dir, scrub=status.scrub_env, threads=settings.worker_threads, settings=settings)

    first_progress = [True]

    def on_message(message: protocol.Message, seconds: float) -> None:
        if isinstance(message, protocol.Progress) and first_progress[0]:
            first_progress[0] = False
            log.info("sandbox child of job %s: first progress %.3f s after its start", job_dir.name, seconds)
        if isinstance(message, protocol.Ready):
            how = (f"confined (Landlock ABI {message.landlock_abi}, no network)" if message.confined else "NOT confined")
            say(f"sandbox child started, {how}, after {seconds:.2f} s")
        elif isinstance(message, protocol.Progress):
            progress(message.phase, message.step, message.fraction, message.message)
        elif isinstance(message, protocol.Log):
            say(message.message, message.level)

    result = host.run_child(request, env, on_message=on_message, check_cancelled=check_cancelled, watch=watch)
    assert isinstance(result, protocol.Result)
    collected = outputs.collect(result.outputs, work_dir, job_dir / "collected")
    return PipelineResult(outputs=collected, metrics=result.metrics, summary=result.summary)
