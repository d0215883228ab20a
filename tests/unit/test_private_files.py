"""The data dir is private: directories 0700, files 0600 (modelpress_core/storage/private.py)."""

from __future__ import annotations

import io
import os
import stat

from modelpress_core.storage.artifacts import LocalArtifactStore
from modelpress_core.storage.private import open_private_append, private_dir, tighten, write_private


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_dir_creates_missing_parents_0700_and_fixes_an_existing_one(tmp_path):
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", made)] == [0o700] * 3
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    private_dir(loose)
    assert mode(loose) == 0o700


def test_tighten_fixes_a_tree_and_leaves_symlinks_and_their_targets_alone(tmp_path):
    root = tmp_path / "data"
    (root / "redis" / "appendonlydir").mkdir(parents=True)
    aof = root / "redis" / "appendonlydir" / "appendonly.aof.1.incr.aof"
    aof.write_text("*1\r\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    for p, m in ((root, 0o755), (root / "redis", 0o755), (aof, 0o644), (outside, 0o644)):
        os.chmod(p, m)
    (root / "link").symlink_to(outside)
    assert tighten(root) == 4  # root, redis/, appendonlydir/ (mkdir's 0755 under umask 022), the AOF
    assert (mode(root), mode(root / "redis"), mode(aof), mode(outside)) == (0o700, 0o700, 0o600, 0o644)
    assert tighten(root) == 0


def test_private_writes_are_0600_even_over_a_loose_existing_file(tmp_path):
    path = tmp_path / "url"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_private(path, "redis://:secret@127.0.0.1:1/0")
    assert mode(path) == 0o600 and path.read_text() == "redis://:secret@127.0.0.1:1/0"
    log = tmp_path / "api.log"
    with open_private_append(log) as f:
        f.write(b"line\n")
    assert mode(log) == 0o600


def test_the_local_artifact_store_writes_private_directories_and_files(tmp_path):
    old = os.umask(0o022)  # a usual umask: what the store creates must not depend on it
    try:
        store = LocalArtifactStore(tmp_path / "artifacts")
        store.put_stream("j_1", "outputs", "model.onnx", io.BytesIO(b"x" * 10))
    finally:
        os.umask(old)
    root = tmp_path / "artifacts"
    assert [mode(p) for p in (root, root / "j_1", root / "j_1" / "outputs")] == [0o700] * 3
    assert mode(root / "j_1" / "outputs" / "model.onnx") == 0o600
