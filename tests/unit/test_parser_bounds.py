"""Every bound of the upload parsers: header size and depth, zip directory and ratios, the CPU/byte
budget, and the cap on concurrent checks. CPU assertions use ``time.process_time()`` deltas; the
margins are stated where they are asserted."""

import io
import json
import random
import struct
import threading
import time
import zipfile

import numpy as np
import pytest

from modelpress_core import intake, jsonscan
from service.api.intake_slots import IntakeSlots
from modelpress_core.budget import InspectionBudget
from modelpress_core.datafiles import check_data_file
from modelpress_core.errors import (
    InvalidUpload,
    Unavailable,
    UnsafeUpload,
    UnsupportedUpload,
    UploadTooLarge,
)
from modelpress_core.jsonscan import iter_members, scan_object
from modelpress_core.zipsafety import RATIO_FLOOR_BYTES, ZipLimits, check_zip
from tests.zips import deflated_zip

MIB = 1024 * 1024


def write(tmp_path, data: bytes, name: str = "upload"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def safetensors_file(tmp_path, raw_header: bytes, data_len: int = 0):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw_header)) + raw_header + b"\0" * data_len)
    return path


def entry(offset: int, n: int = 1) -> dict:
    return {"dtype": "F32", "shape": [n], "data_offsets": [offset, offset + 4 * n]}


# --- the JSON scan ---------------------------------------------------------------------------


def real_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((real_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((real_depth(v) for v in value), default=0)
    return 0


def random_value(rng: random.Random, depth: int):
    r = rng.random()
    if depth < 5 and r < 0.3:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 5 and r < 0.5:
        return {rng.choice(["a", 'b"', "\\", "x,y", "}]", "\\\\\""]): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice([1, -2.5, None, True, "s\\", 'q"', "]", "{[", "\\\\", ","])


KEY_TAILS = ["", "\\", '"', ",", "\\\\"]


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_the_scan_agrees_with_json_on_depth_and_members(monkeypatch, chunk):
    """Strings with escaped quotes, backslash runs and brackets, split at every chunk boundary."""
    monkeypatch.setattr(jsonscan, "CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(300):
        obj = {f"k{i}" + rng.choice(KEY_TAILS): random_value(rng, 1) for i in range(rng.randint(0, 4))}
        raw = json.dumps(obj, indent=rng.choice([None, 1])).encode()
        scan = scan_object(raw, max_depth=10, max_members=10)
        assert scan.max_depth == real_depth(obj)
        assert scan.members == len(obj)
        assert dict(iter_members(raw, scan, max_member_bytes=1 << 20)) == obj


def test_a_50000_deep_header_is_refused_before_json_sees_it(tmp_path):
    raw = b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with pytest.raises(InvalidUpload, match="nested more than 3 deep"):
        intake.read_safetensors_header(safetensors_file(tmp_path, raw), max_tensors=10, max_parameters=100)


@pytest.mark.parametrize("raw", [b'{"a":1}}', b'{"a":"}', b"[]", b"{", b"}", b'{"a":1]', b' {"a":1} x', b"{,}", b'{"a":1,}'])
def test_malformed_objects_are_refused(tmp_path, raw):
    with pytest.raises(InvalidUpload):
        intake.read_safetensors_header(safetensors_file(tmp_path, raw), max_tensors=10, max_parameters=100)


def test_a_duplicate_tensor_name_is_refused(tmp_path):
    raw = b'{"w":' + json.dumps(entry(0)).encode() + b',"w":' + json.dumps(entry(4)).encode() + b"}"
    with pytest.raises(InvalidUpload, match="twice"):
        intake.read_safetensors_header(safetensors_file(tmp_path, raw, 8), max_tensors=10, max_parameters=100)


def test_one_member_over_the_member_limit_is_refused_unparsed(tmp_path):
    raw = b'{"__metadata__":{"k":"' + b"x" * intake.HEADER_METADATA_BYTES + b'"}}'
    with pytest.raises(InvalidUpload, match="member of"):
        intake.read_safetensors_header(safetensors_file(tmp_path, raw), max_tensors=10, max_parameters=100,
                                       max_header_bytes=10 * MIB)


# --- the header size limit -------------------------------------------------------------------


def test_the_header_limit_follows_the_tensor_count():
    assert intake.header_limit(100_000) == intake.HEADER_METADATA_BYTES + 256 * 100_000
    assert intake.header_limit(2) == intake.HEADER_METADATA_BYTES + 512


def test_a_header_of_exactly_the_limit_is_read_and_one_byte_more_is_413(tmp_path):
    tensors = {f"layer.{i}.weight": entry(4 * i) for i in range(100)}
    raw = json.dumps(tensors).encode()
    limit = intake.header_limit(100)
    padded = raw + b" " * (limit - len(raw))  # safetensors pads its header with spaces
    header = intake.read_safetensors_header(safetensors_file(tmp_path, padded, 400), max_tensors=100, max_parameters=1000)
    assert len(header.tensors) == 100
    with pytest.raises(UploadTooLarge) as caught:
        intake.read_safetensors_header(safetensors_file(tmp_path, padded + b" ", 400), max_tensors=100, max_parameters=1000)
    assert caught.value.status == 413 and caught.value.extra["limit"] == limit


def test_more_tensors_than_the_limit_are_refused_by_the_scan(tmp_path):
    tensors = {f"t{i}": entry(4 * i) for i in range(12)}
    with pytest.raises(InvalidUpload, match="more than 11 members"):
        intake.read_safetensors_header(safetensors_file(tmp_path, json.dumps(tensors).encode(), 48), max_tensors=10,
                                       max_parameters=1000, max_header_bytes=MIB)


def test_a_data_part_header_is_limited_to_two_tensors(tmp_path):
    """A data part's header may be as long as a two-tensor header, whatever MODELPRESS_MAX_TENSORS says."""
    raw = json.dumps({"inputs": entry(0)}).encode()
    path = safetensors_file(tmp_path, raw + b" " * intake.header_limit(2), 4)
    with pytest.raises(UploadTooLarge, match="^eval: the safetensors header"):
        check_data_file("eval", path, max_tensors=100_000, max_parameters=10**6, zip_limits=ZipLimits())


# --- zips: the central directory first -------------------------------------------------------


def test_npz_of_3000_one_mib_zero_entries_is_refused_within_a_small_cpu_budget(tmp_path):
    """The reviewer's 3.4 MB .npz (3 GB of zeros): refused from the central directory. Budget 0.5 s of
    CPU; the check takes about 0.02 s here, so the margin is over 20x. Inflating it all took 20-40 s."""
    path = write(tmp_path, deflated_zip([(f"a{i}.npy", MIB) for i in range(3000)]), "d.npz")
    assert path.stat().st_size < 4 * MIB
    started = time.process_time()
    with pytest.raises(InvalidUpload, match="expected arrays 'inputs'"):
        check_data_file("eval", path, max_tensors=10, max_parameters=10**6, zip_limits=ZipLimits())
    assert time.process_time() - started < 0.5


def test_npz_with_the_right_names_but_zero_filled_entries_is_refused_unread(tmp_path):
    path = write(tmp_path, deflated_zip([("inputs.npy", 64 * MIB), ("labels.npy", MIB)]), "d.npz")
    started = time.process_time()
    with pytest.raises(UnsafeUpload, match="expands"):
        check_data_file("eval", path, max_tensors=10, max_parameters=10**6, zip_limits=ZipLimits())
    assert time.process_time() - started < 0.5  # about 0.02 s here; inflating and CRC-checking 65 MiB about 0.3 s


def test_many_small_zero_entries_are_caught_by_the_overall_ratio(tmp_path):
    """Entries under the per-entry floor (64 KiB) may each compress well, but not all of them together."""
    small = RATIO_FLOOR_BYTES - 1
    names = ["m/code/__torch__.py", "m/constants.pkl", "m/data.pkl", "m/version"]
    entries = [(n, 0) for n in names] + [(f"m/data/{i}", small) for i in range(3000)]
    path = write(tmp_path, deflated_zip(entries))
    started = time.process_time()
    with pytest.raises(UnsafeUpload, match="together"):
        check_zip(path, ZipLimits())
    assert time.process_time() - started < 0.5  # about 0.02 s here; inflating 190 MiB would take about 1 s


def test_one_entry_just_over_the_floor_has_its_ratio_checked(tmp_path):
    path = write(tmp_path, deflated_zip([("m/a", RATIO_FLOOR_BYTES + 1)]))
    with pytest.raises(UnsafeUpload, match="expands"):
        check_zip(path, ZipLimits())
    check_zip(write(tmp_path, deflated_zip([("m/a", RATIO_FLOOR_BYTES)])), ZipLimits())  # at the floor: allowed


def test_a_non_model_zip_is_refused_before_anything_inflates(tmp_path):
    """No TorchScript layout: 415 from the names, though every entry would be a bomb."""
    path = write(tmp_path, deflated_zip([(f"w/{i}", 64 * MIB) for i in range(50)]))
    started = time.process_time()
    with pytest.raises(UnsupportedUpload):
        intake.sniff(path)
    assert time.process_time() - started < 0.5


def test_the_entry_count_is_read_from_the_end_record_before_the_directory(tmp_path):
    data = bytearray(deflated_zip([("m/a", 10)]))
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 60_000, 60_000)  # claims 60,000 entries
    with pytest.raises(UnsafeUpload, match="60000 entries"):
        check_zip(write(tmp_path, bytes(data)), ZipLimits())
    struct.pack_into("<HHI", data, eocd + 8, 1, 1, 20 * MIB)  # a 20 MiB central directory for one entry
    with pytest.raises(UnsafeUpload, match="central directory"):
        check_zip(write(tmp_path, bytes(data)), ZipLimits(max_entries=100))


# --- the per-upload budget -------------------------------------------------------------------


def stored_torchscript_like(entries: int, size: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in ("m/code/__torch__.py", "m/version"):
            z.writestr(name, b"3")
        for name in ("m/constants.pkl", "m/data.pkl"):
            z.writestr(name, b"\x80\x02).")
        for i in range(entries):
            z.writestr(f"m/data/{i}", np.random.default_rng(i).bytes(size))
    return out.getvalue()


def test_the_cpu_budget_stops_an_expensive_zip_part_way(tmp_path):
    path = write(tmp_path, stored_torchscript_like(40, 4 * MIB))  # 160 MiB of CRCs
    assert intake.sniff(path) == "torchscript"
    started = time.process_time()
    with pytest.raises(UploadTooLarge, match="CPU seconds") as caught:
        intake.sniff(path, ZipLimits(max_cpu_s=0.01))
    assert caught.value.status == 413
    assert time.process_time() - started < 0.5  # one 1 MiB chunk past the budget, not all 160 MiB


def test_the_byte_budget_is_shared_by_every_file_of_an_upload(tmp_path):
    path = write(tmp_path, stored_torchscript_like(2, MIB))
    limits = ZipLimits(max_total_bytes=3 * MIB)
    budget = limits.budget()
    intake.sniff(path, limits, budget)  # 2 MiB of 3
    with pytest.raises(UnsafeUpload, match="unpacks to more than"):
        intake.sniff(path, limits, budget)  # the second file of the same upload passes 3 MiB


def test_the_budget_counts_this_threads_cpu_only():
    budget = InspectionBudget(cpu_s=0.2, max_bytes=1)
    worker = threading.Thread(target=lambda: sum(range(30_000_000)))  # CPU on another thread
    worker.start()
    worker.join()
    budget.spend()  # not charged here
    assert budget.cpu_used < 0.2


# --- the cap on concurrent checks ------------------------------------------------------------


def test_slots_let_size_run_size_wait_and_refuse_the_rest():
    slots = IntakeSlots(size=1, wait_s=30)
    inside, release = threading.Event(), threading.Event()
    waited: list[str] = []

    def hold_first():
        with slots.hold():
            inside.set()
            release.wait(30)

    def wait_second():
        with slots.hold():
            waited.append("got the slot")

    first = threading.Thread(target=hold_first)
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=wait_second)
    second.start()
    deadline = time.monotonic() + 30
    while slots.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slots.running == 1 and slots.waiting == 1
    with pytest.raises(Unavailable) as caught, slots.hold():  # 1 running + 1 waiting = 2 x size: refused at once
        pass
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "30"
    release.set()
    first.join(30)
    second.join(30)
    assert waited == ["got the slot"] and slots.running == 0 and slots.refused == 1


def test_a_wait_that_runs_out_is_503():
    slots = IntakeSlots(size=1, wait_s=0)
    with slots.hold(), pytest.raises(Unavailable, match="MODELPRESS_MAX_CONCURRENT_INSPECTIONS"), slots.hold():
        pass
    with slots.hold():  # released again
        assert slots.running == 1
