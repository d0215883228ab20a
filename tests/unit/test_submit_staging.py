"""Staging an upload once, the store adopting it, and typed inputs on the job record (old records too)."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import datetime, timezone

from modelpress_core.job import ArtifactInfo, JobRecord
from modelpress_core.storage.artifacts import ArtifactStore, LocalArtifactStore
from modelpress_core.storage.staging import stage

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # over one chunk


def test_staging_streams_hashes_and_counts_once(tmp_path):
    staged = stage(io.BytesIO(PAYLOAD), tmp_path / ".staging", prefix="model-")
    assert staged.bytes == len(PAYLOAD) and staged.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert staged.path.read_bytes() == PAYLOAD and (staged.path.stat().st_mode & 0o777) == 0o600
    staged.discard()
    assert not staged.path.exists()


def test_a_local_store_adopts_the_staged_file_by_rename(tmp_path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    staged = stage(io.BytesIO(PAYLOAD), tmp_path / "artifacts" / ".staging", prefix="model-")
    inode = staged.path.stat().st_ino
    assert store.adopt("j_1", "inputs", "model.safetensors", staged) == (len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    stored = store.path("j_1", "inputs", "model.safetensors")
    assert stored.stat().st_ino == inode and not staged.path.exists()  # the same file: no second copy
    staged.discard()  # what the use case does on its way out: a no-op now


def test_the_default_adopt_copies_once_and_leaves_the_staged_file(tmp_path):
    class CopyingStore(LocalArtifactStore):
        adopt = ArtifactStore.adopt  # what a store without a cheaper way (S3) does

    store = CopyingStore(tmp_path / "artifacts")
    staged = stage(io.BytesIO(PAYLOAD), tmp_path / "elsewhere", prefix="model-")
    assert store.adopt("j_1", "inputs", "model.safetensors", staged)[1] == staged.sha256
    assert store.path("j_1", "inputs", "model.safetensors").read_bytes() == PAYLOAD and staged.path.exists()


def _info(name: str, fmt: str) -> dict:
    return ArtifactInfo(name=name, format=fmt, bytes=1, sha256="0" * 64).model_dump()


def test_a_record_written_before_typed_inputs_reads_with_them():
    now = datetime.now(timezone.utc).isoformat()
    old = {"id": "j_1", "spec": {}, "created_at": now, "updated_at": now,
           "inputs": [_info("model.safetensors", "safetensors"), _info("train.npz", "npz"), _info("eval.safetensors", "safetensors")]}
    record = JobRecord.model_validate(old)
    assert record.model.name == "model.safetensors"
    assert {p: i.name for p, i in record.data.items()} == {"train": "train.npz", "eval": "eval.safetensors"}
    again = JobRecord.model_validate_json(record.model_dump_json())
    assert again.model == record.model and again.data == record.data


def test_a_record_with_typed_inputs_keeps_them():
    now = datetime.now(timezone.utc).isoformat()
    model, data = _info("model.torchscript.pt", "torchscript"), _info("calibration.npz", "npz")
    record = JobRecord.model_validate({"id": "j_2", "spec": {}, "created_at": now, "updated_at": now,
                                       "inputs": [model, data], "model": model, "data": {"calibration": data}})
    assert record.model.format == "torchscript" and list(record.data) == ["calibration"]
