import io
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from modelpress_core import intake
from modelpress_core.errors import InvalidUpload, ModelpressError, UnsafeUpload, UnsupportedUpload
from modelpress_core.picklescan import check_pickle
from modelpress_core.zipsafety import ZipLimits, check_zip, unsafe_name
from tests.zips import EVIL_PICKLE, entry_name, rezip, torchscript_bytes, zip_bomb


def write(tmp_path, data: bytes, name: str = "upload"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return out.getvalue()


def test_a_torchscript_archive_is_recognised(tmp_path):
    assert intake.sniff(write(tmp_path, torchscript_bytes())) == "torchscript"


def test_zip_bomb_is_unsafe(tmp_path):
    with pytest.raises(UnsafeUpload, match="expands"):
        intake.sniff(write(tmp_path, zip_bomb(8)))


def test_total_size_and_entry_count_limits(tmp_path):
    path = write(tmp_path, make_zip({f"m/{i}": b"x" * 100 for i in range(20)}))
    with pytest.raises(UnsafeUpload, match="entries"):
        check_zip(path, ZipLimits(max_entries=10))
    with pytest.raises(UnsafeUpload, match="unpacks"):
        check_zip(path, ZipLimits(max_total_bytes=1000))
    assert len(check_zip(path, ZipLimits())) == 20


def test_sizes_that_lie_are_caught(tmp_path):
    data = bytearray(make_zip({"m/a": b"y" * 5000}))
    # shrink the declared uncompressed size in the central directory: the stream then says more
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 10)
    with pytest.raises((UnsafeUpload, InvalidUpload)):
        check_zip(write(tmp_path, bytes(data)), ZipLimits())


def test_unsafe_names():
    assert unsafe_name("m/a\x00b") and unsafe_name("") and unsafe_name("m/..")
    assert unsafe_name("m/code/__torch__.py") is None and unsafe_name("m/..data") is None


@pytest.mark.parametrize("name", ["../evil.py", "m/../../etc/passwd", "/etc/passwd", "C:/x", "m\\..\\x"])
def test_traversal_names_are_unsafe(tmp_path, name):
    assert unsafe_name(name)
    data = rezip(torchscript_bytes(), add={name: b"x"})
    with pytest.raises(UnsafeUpload):
        intake.sniff(write(tmp_path, data))


def test_a_crc_mismatch_is_invalid(tmp_path):
    good = rezip(torchscript_bytes())
    at = good.find(b"def forward")
    assert at > 0
    tampered = good[:at] + b"def fxrward" + good[at + len(b"def forward"):]
    with pytest.raises(InvalidUpload, match="corrupt"):
        intake.sniff(write(tmp_path, tampered))


def test_a_foreign_global_in_data_pkl_is_unsafe(tmp_path):
    data = torchscript_bytes()
    evil = rezip(data, replace={entry_name(data, "/data.pkl"): EVIL_PICKLE})
    with pytest.raises(UnsafeUpload, match="os system"):
        intake.sniff(write(tmp_path, evil))


def test_pickle_scan_never_runs_anything():
    with pytest.raises(UnsafeUpload):
        check_pickle(EVIL_PICKLE, "data.pkl")
    with pytest.raises(InvalidUpload):
        check_pickle(b"\x80\x02(", "data.pkl")


def test_exported_program_is_refused(tmp_path):
    data = make_zip({"m/archive_format": b"pt2", "m/models/model.json": b"{}", "m/data/weights/w": b"\0"})
    with pytest.raises(UnsupportedUpload, match="weights_only=False"):
        intake.sniff(write(tmp_path, data))


def test_an_incomplete_torchscript_archive_is_invalid(tmp_path):
    with pytest.raises(InvalidUpload, match="data.pkl"):
        intake.sniff(write(tmp_path, make_zip({"m/code/__torch__.py": b"", "m/constants.pkl": b"\x80\x02).", "m/version": b"3"})))


NAMES = st.lists(
    st.sampled_from(["a", "b", ".", "/", "\\", ":", "m/", "code/", "..", "data.pkl", "constants.pkl", "archive_format", "x.npy"]),
    min_size=1, max_size=8,
).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(NAMES, st.binary(max_size=64), max_size=6), cut=st.integers(min_value=0, max_value=400),
       deflate=st.booleans())
def test_fuzzed_zips_only_ever_raise_problems(tmp_path, entries, cut, deflate):
    """Random names (traversal, torch layouts, pt2 markers), random truncation: the sniffer answers
    with a value or a problem, never another exception."""
    data = make_zip(entries, zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    if cut:
        data = data[: max(4, len(data) - cut)]
    path = write(tmp_path, data, "fuzz")
    try:
        assert intake.sniff(path) in ("safetensors", "torchscript")
    except ModelpressError:
        pass


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_flipped_bytes_in_a_torchscript_archive_only_ever_raise_problems(tmp_path, position, value):
    data = bytearray(torchscript_bytes())
    data[position % len(data)] = value
    path = write(tmp_path, bytes(data), "flip")
    try:
        intake.sniff(path)
    except ModelpressError:
        pass
