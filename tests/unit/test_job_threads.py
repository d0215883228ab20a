"""Each job starts with the worker's thread count, not the one the previous job measured with."""

import torch

from worker import tasks


def test_a_job_after_a_measurement_gets_the_startup_threads_back(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(tasks, "_startup_threads", None)
    try:
        tasks._set_job_threads(0)  # first job: remembers the process's count
        torch.set_num_threads(1)  # what a job's measurement leaves behind
        tasks._set_job_threads(0)
        assert torch.get_num_threads() == before
        tasks._set_job_threads(1)  # MODELPRESS_WORKER_THREADS wins when set
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
