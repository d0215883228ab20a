"""The sandbox child: ``python -P -m worker.sandbox.child PARENT_PID REQUEST_FD MESSAGE_FD``.

Reads its ``Request``, confines itself (``confine.confine``), and only then imports torch and the
pipeline and runs the same ``run_pipeline`` the worker runs in-process for trusted formats. Every
outcome is one message on MESSAGE_FD: a ``Result`` (output paths relative to the work dir) or a
``Failure`` whose detail is capped. Cancellation is the worker's job: it kills this process group.
"""

from __future__ import annotations

import os
import sys

from modelpress_core.errors import JobFailed, SandboxUnavailable
from worker.sandbox import protocol
from worker.sandbox.confine import confine, die_with_parent



def main(argv: list[str]) -> int:
    parent_pid, request_fd, message_fd = (int(a) for a in argv[1:4])
    die_with_parent(parent_pid)
    request = protocol.read_request(request_fd)
    os.close(request_fd)
    if request.confine:
        try:
            ready = confine(request)
        except Exception as exc:  # noqa: BLE001 - fail closed, and say why
            protocol.write(message_fd, protocol.Failure(
                type=SandboxUnavailable("").type, title=SandboxUnavailable.title, status=SandboxUnavailable.status,
                detail=protocol.bounded_text(f"{type(exc).__name__}: {exc}", protocol.MAX_DETAIL_CHARS)))
            return 3
    else:
        ready = protocol.Ready(landlock_abi=0, network_isolated=False, confined=False)
    protocol.write(message_fd, ready)
    if request.probe:
        return 0
    protocol.write(message_fd, _run(request, message_fd))
    return 0


def _run(request: protocol.Request, message_fd: int):
    """The pipeline, confined. Returns the one final message."""
    try:
        from pathlib import Path

        import torch

        from modelpress_core.errors import ModelpressError
        from modelpress_core.spec import JobSpec
        from worker.pipeline import run_pipeline
    except BaseException as exc:  # noqa: BLE001
        return _failure(exc)

    def progress(phase: str, step: int | None, fraction: float, message: str) -> None:
        protocol.write(message_fd, protocol.Progress(phase=phase, step=step, fraction=fraction, message=message))

    work_dir = Path(request.work_dir)
    try:
        if request.threads:
            torch.set_num_threads(request.threads)
        result = run_pipeline(
            JobSpec.model_validate(request.spec), Path(request.model_path), work_dir,
            progress=progress, check_cancelled=lambda: None, warmup=request.warmup, runs=request.runs,
            input_sha256=request.input_sha256, data={k: (Path(p), f) for k, (p, f) in request.data.items()},
            data_sha256=request.data_sha256, delay_s=request.delay_s, delay_cancellable=request.delay_cancellable,
            delay_release=Path(request.delay_release) if request.delay_release else None,
            search_max_seconds=request.search_max_seconds,
        )
        outputs = [protocol.OutputFile(name=o.name, format=o.format, media_type=o.media_type,
                                       path=str(Path(o.path).relative_to(work_dir))) for o in result.outputs]
        message = protocol.Result(outputs=outputs, metrics=result.metrics, summary=result.summary)
        protocol.encode(message)  # over the cap: a failure, not a broken pipe
        return message
    except ModelpressError as exc:
        return protocol.Failure(type=exc.type, title=exc.title[:200], status=exc.status,
                                detail=protocol.bounded_text(str(exc.detail), protocol.MAX_DETAIL_CHARS))
    except BaseException as exc:  # noqa: BLE001 - user code fails in any way it likes
        return _failure(exc)


def _failure(exc: BaseException) -> protocol.Failure:
    return protocol.Failure(type=JobFailed("").type, title=JobFailed.title, status=JobFailed.status,
                            detail=protocol.bounded_text(f"{type(exc).__name__}: {exc}", protocol.MAX_DETAIL_CHARS))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
