"""The worker's checks on the output files a sandbox child names (the child is not trusted)."""

from __future__ import annotations

import os

import pytest

from modelpress_core.errors import SandboxFailed
from worker.sandbox.outputs import collect
from worker.sandbox.protocol import OutputFile


def onnx(path: str = "model.onnx", name: str = "model.onnx", fmt: str = "onnx") -> OutputFile:
    return OutputFile(name=name, format=fmt, media_type="text/html", path=path)


@pytest.fixture
def dirs(tmp_path):
    work, dest, secret = tmp_path / "work", tmp_path / "collected", tmp_path / "secret.txt"
    work.mkdir()
    secret.write_text("the redis password")
    return work, dest, secret


def test_a_plain_file_is_copied_with_the_format_s_own_media_type(dirs):
    work, dest, _ = dirs
    (work / "candidate-1").mkdir()
    (work / "candidate-1" / "model.onnx").write_bytes(b"onnx bytes")
    [output] = collect([onnx("candidate-1/model.onnx")], work, dest)
    assert output.path == dest / "model.onnx" and output.path.read_bytes() == b"onnx bytes"
    assert output.media_type == "application/onnx"


@pytest.mark.parametrize("make", ["symlink", "hardlink", "dir_symlink", "fifo", "missing"])
def test_links_and_special_files_are_refused(dirs, make):
    work, dest, secret = dirs
    path = "model.onnx"
    if make == "symlink":
        (work / "model.onnx").symlink_to(secret)
    elif make == "hardlink":
        os.link(secret, work / "model.onnx")
    elif make == "dir_symlink":
        (work / "sub").symlink_to(secret.parent)
        os.replace(secret, secret.parent / "model.onnx")
        path = "sub/model.onnx"
    elif make == "fifo":
        os.mkfifo(work / "model.onnx")
    with pytest.raises(SandboxFailed):
        collect([onnx(path)], work, dest)
    assert not (dest / "model.onnx").exists()


@pytest.mark.parametrize("output", [onnx("../secret.txt"), onnx("/etc/passwd"), onnx("./model.onnx"),
                                    onnx(name="evil.html"), onnx(fmt="exe"), onnx(name="model.safetensors")])
def test_names_and_paths_outside_the_table_are_refused(dirs, output):
    work, dest, _ = dirs
    (work / "model.onnx").write_bytes(b"x")
    with pytest.raises(SandboxFailed):
        collect([output], work, dest)


def test_no_outputs_is_a_failure(dirs):
    work, dest, _ = dirs
    with pytest.raises(SandboxFailed):
        collect([], work, dest)
