"""The only task: ``run_job(job_id)``. Thin and idempotent; the job record is the truth."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import redis
from celery.exceptions import SoftTimeLimitExceeded

from service.config import get_settings
from service.domain.errors import ModelpressError
from service.domain.job import ArtifactInfo, JobState, Progress, utcnow
from service.domain.spec import JobSpec
from service.queue import RUN_JOB_TASK
from service.storage.artifacts import LocalArtifactStore
from service.storage.jobs import JobNotFound, JobRepository
from worker.celery_app import app

log = logging.getLogger("modelpress.worker")

DATA_PARTS = ("calibration", "train", "eval")
METRICS_FILE = "metrics.json"


class JobCancelled(Exception):
    pass


def _failure(exc: BaseException) -> dict:
    if isinstance(exc, ModelpressError):
        return exc.to_problem()
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"type": "https://modelpress.dev/problems/time-limit", "title": "Job time limit exceeded", "status": 500,
                "detail": f"the job ran past its soft time limit ({get_settings().job_soft_time_limit_s} s)"}
    return {"type": "https://modelpress.dev/problems/job-failed", "title": "The job failed", "status": 500,
            "detail": f"{type(exc).__name__}: {exc}"}


@app.task(name=RUN_JOB_TASK, bind=True)
def run_job(self, job_id: str) -> None:
    settings = get_settings()
    jobs = JobRepository(redis.Redis.from_url(settings.redis_url, socket_timeout=30))
    store = LocalArtifactStore(settings.artifacts_path)
    try:
        record = jobs.get(job_id)
    except JobNotFound:
        log.warning("job %s is gone; dropping the message", job_id)
        return
    if record.terminal:
        return  # redelivered after it finished: nothing to do
    if record.state == JobState.cancelling:
        jobs.transition(job_id, JobState.cancelled, finished_at=utcnow())
        return

    def claim(r):
        r.state = JobState.running
        r.started_at = r.started_at or utcnow()
        r.attempts += 1
        r.worker = self.request.hostname
        r.progress = Progress(phase="starting", fraction=0.01, message="a worker picked up the job")

    jobs.update(job_id, claim)  # a redelivery after a crash finds it running: claimed again in place
    store.remove_area(job_id, "outputs")  # leftovers of a crashed attempt

    def progress(phase: str, step: int | None, fraction: float, message: str) -> None:
        jobs.update(job_id, lambda r: setattr(r, "progress", Progress(phase=phase, step=step, fraction=fraction, message=message)))

    def check_cancelled() -> None:
        if jobs.get(job_id).state == JobState.cancelling:
            raise JobCancelled()

    workdir = Path(tempfile.mkdtemp(prefix=f"modelpress-{job_id}-"))
    try:
        from worker.pipeline import run_pipeline

        spec = JobSpec.model_validate(record.spec)
        if settings.worker_threads:
            import torch

            torch.set_num_threads(settings.worker_threads)
        model_info = record.inputs[0]
        model_path = store.local_path(job_id, "inputs", model_info.name)
        data = {
            i.name.split(".", 1)[0]: (store.local_path(job_id, "inputs", i.name), i.format)
            for i in record.inputs[1:]
            if i.name.split(".", 1)[0] in DATA_PARTS
        }
        result = run_pipeline(
            spec,
            model_path,
            workdir,
            progress=progress,
            check_cancelled=check_cancelled,
            warmup=settings.latency_warmup,
            runs=settings.latency_runs,
            input_sha256=model_info.sha256,
            data=data,
            data_sha256={i.name: i.sha256 for i in record.inputs[1:]},
        )
        artifacts = []
        for output in result.outputs:
            size, sha = store.put_file(job_id, "outputs", output.name, output.path)
            artifacts.append(ArtifactInfo(name=output.name, format=output.format, bytes=size, sha256=sha, media_type=output.media_type))
        metrics_path = workdir / METRICS_FILE
        metrics_path.write_text(json.dumps(result.metrics, indent=2, default=str))
        store.put_file(job_id, "outputs", METRICS_FILE, metrics_path)
        jobs.transition(job_id, JobState.succeeded, artifacts=artifacts, summary=result.summary, finished_at=utcnow(),
                        progress=Progress(phase="done", fraction=1.0, message="finished"))
    except JobCancelled:
        store.remove_area(job_id, "outputs")
        jobs.transition(job_id, JobState.cancelled, finished_at=utcnow())
    except BaseException as exc:  # noqa: BLE001 - every failure must end the job with a reason
        log.exception("job %s failed", job_id)
        store.remove_area(job_id, "outputs")
        try:
            jobs.transition(job_id, JobState.failed, error=_failure(exc), finished_at=utcnow())
        except ModelpressError:
            log.exception("could not mark job %s failed", job_id)
        if not isinstance(exc, Exception):
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
