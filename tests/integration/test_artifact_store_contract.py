"""The artifact store contract, run on both implementations: a local directory and S3 (a real moto.server)."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import threading
import uuid

import pytest

from modelpress_core.storage.artifacts import ArtifactNotFound, ArtifactStore, LocalArtifactStore

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_store(s3_server):
    """One S3 store (client creation is slow); each test gets its own key prefix."""
    from modelpress_core.storage.s3 import S3ArtifactStore
    from tests.integration.s3server import CREDENTIALS

    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        # a 5 MiB multipart threshold, so the large-object test goes through a real multipart upload
        yield S3ArtifactStore(bucket=s3_server.new_bucket(), endpoint_url=s3_server.endpoint, region="us-east-1",
                              multipart_bytes=5 * MiB)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    s3 = copy.copy(request.getfixturevalue("s3_store"))
    s3.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    return s3


def read_all(store: ArtifactStore, job: str, area: str, name: str) -> bytes:
    with store.open(job, area, name) as f:
        return f.read()


def test_put_then_read_back_with_size_and_hash(store):
    size, sha = store.put_stream("j_1", "outputs", "a.bin", io.BytesIO(b"hello"))
    assert (size, sha) == (5, hashlib.sha256(b"hello").hexdigest())
    length, chunks = store.stream("j_1", "outputs", "a.bin")
    assert (length, b"".join(chunks)) == (5, b"hello")
    assert store.size("j_1", "outputs", "a.bin") == 5
    assert read_all(store, "j_1", "outputs", "a.bin") == b"hello"
    assert store.list("j_1") == ["outputs/a.bin"]


def test_large_object_in_several_chunks(store, tmp_path):
    data = os.urandom(11 * MiB + 3)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    size, sha = store.put_file("j_1", "inputs", "model.safetensors", source)
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    length, chunks = store.stream("j_1", "inputs", "model.safetensors")
    parts = list(chunks)
    assert length == len(data) and len(parts) > 1 and b"".join(parts) == data


def test_fetch_gives_a_local_file(store, tmp_path):
    store.put_stream("j_1", "inputs", "model.safetensors", io.BytesIO(b"weights"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert store.fetch("j_1", "inputs", "model.safetensors", workdir).read_bytes() == b"weights"


class Broken(io.RawIOBase):
    """Yields some bytes, then fails like a dropped connection."""

    def __init__(self):
        self.sent = False

    def readable(self):
        return True

    def read(self, n=-1):
        if not self.sent:
            self.sent = True
            return b"x" * 1000
        raise OSError("client went away")


def test_a_failed_write_leaves_nothing(store):
    with pytest.raises(OSError):
        store.put_stream("j_1", "outputs", "a.bin", Broken())
    assert store.list("j_1") == []
    with pytest.raises(ArtifactNotFound):
        store.open("j_1", "outputs", "a.bin")


def test_a_failed_overwrite_keeps_the_old_file(store):
    store.put_stream("j_1", "outputs", "a.bin", io.BytesIO(b"old"))
    with pytest.raises(OSError):
        store.put_stream("j_1", "outputs", "a.bin", Broken())
    assert read_all(store, "j_1", "outputs", "a.bin") == b"old"
    store.put_stream("j_1", "outputs", "a.bin", io.BytesIO(b"new!"))
    assert read_all(store, "j_1", "outputs", "a.bin") == b"new!"


class Paused(io.RawIOBase):
    """Sends half, waits until told to go on, sends the rest."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0
        self.halfway, self.go_on = threading.Event(), threading.Event()

    def readable(self):
        return True

    def read(self, n=-1):
        half = len(self.data) // 2
        if self.pos >= half and not self.go_on.is_set():
            self.halfway.set()
            assert self.go_on.wait(30)
        end = len(self.data) if n is None or n < 0 else self.pos + n
        if self.pos < half:
            end = min(end, half)
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk


def test_nothing_is_visible_until_the_write_completes(store):
    source = Paused(b"0123456789" * 1000)
    writer = threading.Thread(target=store.put_stream, args=("j_1", "outputs", "a.bin", source))
    writer.start()
    try:
        assert source.halfway.wait(30)
        assert store.list("j_1") == []
        with pytest.raises(ArtifactNotFound):
            store.open("j_1", "outputs", "a.bin")
    finally:
        source.go_on.set()
        writer.join(30)
    assert read_all(store, "j_1", "outputs", "a.bin") == b"0123456789" * 1000


@pytest.mark.parametrize("call", ["open", "stream", "size"])
def test_missing_files_are_artifact_not_found(store, call):
    with pytest.raises(ArtifactNotFound):
        getattr(store, call)("j_1", "outputs", "nope.bin")


def test_fetching_a_missing_file_is_artifact_not_found(store, tmp_path):
    with pytest.raises(ArtifactNotFound):
        store.fetch("j_1", "inputs", "nope.bin", tmp_path)


@pytest.mark.parametrize("job, area, name", [("../x", "outputs", "a"), ("j", "outputs", "../../etc/passwd"),
                                             ("j", "outputs", ".hidden"), ("j/k", "outputs", "a"), ("j", "other", "a")])
def test_unsafe_names_are_refused(store, job, area, name):
    with pytest.raises(ValueError):
        store.put_stream(job, area, name, io.BytesIO(b"x"))


def test_remove_area_job_and_neighbours(store):
    for job in ("j_1", "j_10"):
        store.put_stream(job, "inputs", "model.safetensors", io.BytesIO(b"m"))
        store.put_stream(job, "outputs", "a.bin", io.BytesIO(b"a"))
        store.put_stream(job, "outputs", "metrics.json", io.BytesIO(b"{}"))
    store.remove_area("j_1", "outputs")
    assert store.list("j_1") == ["inputs/model.safetensors"]
    store.remove_job("j_1")
    assert store.list("j_1") == []
    assert store.list("j_10") == ["inputs/model.safetensors", "outputs/a.bin", "outputs/metrics.json"]  # j_1 is not a prefix of j_10
    store.remove_job("j_1")  # again: no error
    store.remove_area("j_2", "outputs")


def test_check_answers(store):
    store.check()
