import io
import json
import pickle
import struct
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

from modelpress_core import intake
from modelpress_core.errors import InvalidUpload, ModelpressError, UnsafeUpload, UnsupportedUpload


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


GOOD = safetensors_bytes({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 16)


def write(tmp_path, data: bytes):
    path = tmp_path / "upload"
    path.write_bytes(data)
    return path


def read(path):
    return intake.read_safetensors_header(path, max_tensors=100, max_parameters=10_000)


def test_good_safetensors(tmp_path):
    path = write(tmp_path, GOOD)
    assert intake.sniff(path) == "safetensors"
    assert read(path).shapes() == {"w": [2, 2]}


@pytest.mark.parametrize("data", [pickle.dumps({"a": 1}, protocol=p) for p in (2, 3, 4, 5)])
def test_pickles_are_unsafe(tmp_path, data):
    with pytest.raises(UnsafeUpload):
        intake.sniff(write(tmp_path, data))


def test_torch_save_zip_is_unsafe(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("m/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(UnsafeUpload):
        intake.sniff(write(tmp_path, buffer.getvalue()))


@pytest.mark.parametrize("data", [b"GIF89a....", b"\x00" * 32, b"{}"])
def test_unknown_is_unsupported(tmp_path, data):
    with pytest.raises(UnsupportedUpload):
        intake.sniff(write(tmp_path, data))


@pytest.mark.parametrize(
    "data",
    [
        GOOD[:-1],  # truncated data
        struct.pack("<Q", 10**9) + b"{}",  # header longer than the file
        safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),  # size mismatch
        safetensors_bytes({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8),  # dtype
        safetensors_bytes({"w": {"dtype": "F32", "shape": [101, 100], "data_offsets": [0, 40400]}}, b"\0" * 40400),  # params
        safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),  # overlap
        struct.pack("<Q", 4) + b"[1] ",
    ],
)
def test_corrupt_headers_are_invalid(tmp_path, data):
    with pytest.raises(InvalidUpload):
        read(write(tmp_path, data))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_sniffer(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f"
    path.write_bytes(data)
    try:
        if intake.sniff(path) == "safetensors":
            read(path)
    except ModelpressError as exc:
        assert 400 <= exc.status < 500


@pytest.mark.parametrize("raw,fragment", [
    ((b'{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, '
      b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'), "the key 'w' appears twice"),
    (b'{"w": {"dtype": "F32", "shape": [2, 2], "shape": [4], "data_offsets": [0, 16]}}', "the key 'shape' appears twice"),
    (b'{"__metadata__": {"a": "1", "a": "2"}}', "the key 'a' appears twice"),
    (b'{"w": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested more than 3 deep"),
])
def test_a_header_with_duplicate_keys_is_invalid_not_last_one_wins(tmp_path, raw, fragment):
    path = write(tmp_path, struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(InvalidUpload, match=fragment):
        read(path)
