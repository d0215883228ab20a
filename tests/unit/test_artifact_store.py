import hashlib
import io

import pytest

from modelpress_core.storage.artifacts import ArtifactNotFound, LocalArtifactStore


def test_put_is_atomic_and_hashed(tmp_path):
    store = LocalArtifactStore(tmp_path)
    size, sha = store.put_stream("j_1", "outputs", "a.bin", io.BytesIO(b"hello"))
    assert (size, sha) == (5, hashlib.sha256(b"hello").hexdigest())
    assert b"".join(store.iter_chunks("j_1", "outputs", "a.bin")) == b"hello"
    assert [p.name for p in (tmp_path / "j_1" / "outputs").iterdir()] == ["a.bin"]


def test_failed_write_leaves_nothing(tmp_path):
    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise OSError("disk on fire")

    store = LocalArtifactStore(tmp_path)
    with pytest.raises(OSError):
        store.put_stream("j_1", "outputs", "a.bin", Broken())
    assert list((tmp_path / "j_1" / "outputs").iterdir()) == []


@pytest.mark.parametrize("job, name", [("../x", "a"), ("j", "../../etc/passwd"), ("j", ".hidden"), ("j/k", "a")])
def test_unsafe_names_are_refused(tmp_path, job, name):
    with pytest.raises(ValueError):
        LocalArtifactStore(tmp_path).path(job, "outputs", name)


def test_missing_artifact(tmp_path):
    with pytest.raises(ArtifactNotFound):
        LocalArtifactStore(tmp_path).open("j_1", "outputs", "nope")
