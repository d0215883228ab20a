"""The packed transport format: bit-exact round trips, relative index fillers, checked loading, the unpack CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modelpress import PackedFormatError, unpack
from modelpress.artifacts import load_packed, manifest_of
from modelpress.packed import MAGIC, pack, pack_bits, read_header, read_raw, relative_index, unpack_bits
from modelpress_torch.architectures import build_model
from worker.export import write_packed

REPO = Path(__file__).resolve().parents[2]


def shared_sparse(rng, shape, density=0.08, k=31, dtype=np.float32):
    w = np.zeros(shape, dtype)
    book = np.sort(rng.normal(size=k)).astype(dtype)
    mask = rng.random(shape) < density
    w[mask] = book[rng.integers(0, k, int(mask.sum()))]
    return w


def tensors(rng):
    return {
        "sparse_shared": shared_sparse(rng, (120, 400)),
        "sparse_raw": np.where(rng.random((64, 300)) < 0.05, rng.normal(size=(64, 300)), 0).astype(np.float32),
        "dense_shared": np.sort(rng.normal(size=16)).astype(np.float32)[rng.integers(0, 16, (50, 60))],
        "dense_raw": rng.normal(size=(30, 40)).astype(np.float32),
        "half_shared": shared_sparse(rng, (40, 100), density=0.2, k=7, dtype=np.float16),
        "negative_zero": np.array([-0.0, 0.0, 1.5] * 200, np.float32),
        "all_zero": np.zeros((20, 30), np.float32),
        "bias": rng.normal(size=120).astype(np.float32),
        "count": np.array(7, np.int64),
        "mask": rng.random(10) > 0.5,
        "empty": np.zeros((0, 3), np.float32),
    }


def test_round_trip_is_bit_exact_for_every_encoding(tmp_path):
    rng = np.random.default_rng(0)
    original = tensors(rng)
    summary = pack(original, tmp_path / "m.mpk", manifest={"schema": "x"})
    encodings = {n: t["encoding"] for n, t in summary["tensors"].items()}
    assert encodings["sparse_shared"] == "sparse" and summary["tensors"]["sparse_shared"]["values"] == "codebook"
    assert encodings["sparse_raw"] == "sparse" and summary["tensors"]["sparse_raw"]["values"] == "raw"
    assert encodings["dense_shared"] == "shared" and encodings["dense_raw"] == "raw" and encodings["bias"] == "raw"
    back = unpack(tmp_path / "m.mpk")
    assert list(back) == list(original)
    for name, array in original.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape, name
        assert back[name].tobytes() == array.tobytes(), name  # bit patterns: -0.0 stays -0.0
    # shared weights: exactly codebook[code]; the sparse zeros exact
    assert set(np.unique(back["sparse_shared"])) <= set(np.unique(original["sparse_shared"]))
    assert np.count_nonzero(back["sparse_shared"]) == np.count_nonzero(original["sparse_shared"])
    assert os.path.getsize(tmp_path / "m.mpk") == summary["file_bytes"]


def test_bfloat16_round_trip_through_torch(tmp_path):
    model = torch.nn.Linear(300, 40).to(torch.bfloat16)
    with torch.no_grad():
        model.weight.mul_(torch.rand_like(model.weight) < 0.1)
    write_packed(model, tmp_path / "m.mpk", torch.zeros(1, 300))
    back = unpack(tmp_path / "m.mpk", framework="pt")
    assert back["weight"].dtype == torch.bfloat16 and torch.equal(back["weight"].view(torch.int16), model.weight.detach().view(torch.int16))
    with pytest.raises(ValueError, match="bfloat16"):
        unpack(tmp_path / "m.mpk")


def test_relative_index_inserts_filler_zeros_when_a_gap_overflows():
    positions = np.array([0, 3, 40, 41])
    stored, real = relative_index(positions, 3)  # gaps of at most 8
    assert stored.tolist() == [0, 2, 7, 7, 7, 7, 4, 0]  # 37 = 8+8+8+8 (fillers) + 5
    assert real.tolist() == [True, True, False, False, False, False, True, True]
    assert (np.cumsum(stored.astype(int) + 1) - 1)[real].tolist() == positions.tolist()


@pytest.mark.parametrize("bits", [1, 3, 5, 8, 11, 16])
def test_bit_packing_round_trips(bits):
    values = np.random.default_rng(bits).integers(0, 1 << bits, 1001)
    data = pack_bits(values, bits)
    assert len(data) == (1001 * bits + 7) // 8
    assert unpack_bits(data, bits, 1001).tolist() == values.tolist()


@pytest.fixture
def packed_file(tmp_path):
    pack(tensors(np.random.default_rng(1)), tmp_path / "m.mpk")
    return tmp_path / "m.mpk"


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda b: b[: len(b) - 10], "truncated: payload"),
        (lambda b: b[:100], "truncated: the header"),
        (lambda b: b[:12], "truncated"),
        (lambda b: b + b"junk", "corrupted: payload is"),
        (lambda b: b[:-5] + bytes([b[-5] ^ 0x40]) + b[-4:], "payload SHA-256 mismatch"),
        (lambda b: b[:30] + bytes([b[30] ^ 0x01]) + b[31:], "header CRC-32 mismatch"),
        (lambda b: b"PK\x03\x04" + b[4:], "not a modelpress packed file"),
        (lambda b: b[:8] + b"\x09\x00" + b[10:], "version 9"),
        (lambda b: b[:10] + b"\x02\x00" + b[12:], "unknown flags"),
    ],
    ids=["cut-payload", "cut-header", "cut-prefix", "trailing", "flip-payload", "flip-header", "magic", "version", "flags"],
)
def test_damaged_files_are_rejected_with_a_clear_error(packed_file, damage, message):
    packed_file.write_bytes(damage(packed_file.read_bytes()))
    with pytest.raises(PackedFormatError, match=message):
        unpack(packed_file)


def test_a_stream_checksum_names_the_tensor(packed_file):
    """A damaged stream under a consistent outer checksum (as a buggy writer would make) is still caught, per tensor."""
    import hashlib
    import struct
    import zlib

    import zstandard

    blob = packed_file.read_bytes()
    _, _, flags, header_len, _ = struct.unpack_from("<8sHHII", blob)
    assert flags == 1  # the writer compressed the header
    header = json.loads(zstandard.ZstdDecompressor().decompress(blob[20 : 20 + header_len]))
    entry = next(t for t in header["tensors"] if t["name"] == "dense_raw")
    body = bytearray(blob[20 + header_len :])
    body[entry["streams"]["data"]["offset"]] ^= 0xFF
    header["payload_sha256"] = hashlib.sha256(body).hexdigest()
    text = json.dumps(header).encode()  # rewritten as a plain JSON header (flags 0): the other header form
    packed_file.write_bytes(struct.pack("<8sHHII", MAGIC, 1, 0, len(text), zlib.crc32(text)) + text + bytes(body))
    with pytest.raises(PackedFormatError, match="tensor 'dense_raw', stream 'data': corrupted: CRC-32"):
        read_raw(packed_file)


def lenet_packed(tmp_path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("lenet_300_100", {})
    with torch.no_grad():
        for layer in (model.fc1, model.fc2, model.fc3):
            keep = torch.rand_like(layer.weight) < 0.1
            book = torch.linspace(-0.2, 0.2, 31)
            layer.weight.copy_(torch.where(keep, book[torch.randint(0, 31, layer.weight.shape)], torch.zeros(())))
    path = tmp_path / "model.mpk"
    check = write_packed(model, path, torch.zeros(1, 784), manifest_of(model, "lenet_300_100", {}))
    assert check["passed"] and check["round_trip"] == "bit-exact" and check["encodings"]["sparse"] == 3
    return model, path


def test_load_packed_rebuilds_the_architecture_strictly(tmp_path):
    model, path = lenet_packed(tmp_path)
    loaded = load_packed(path)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert read_header(path)["manifest"]["architecture"] == "lenet_300_100"
    assert path.stat().st_size * 25 < 4 * sum(p.numel() for p in model.parameters())


def test_unpack_cli_writes_a_plain_safetensors_state_dict(tmp_path):
    model, path = lenet_packed(tmp_path)
    out = tmp_path / "out.safetensors"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "modelpress.cli", "unpack", str(path), "-o", str(out), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tensors"] == 6
    from safetensors.torch import load_file

    from modelpress.artifacts import load_pruned

    fresh = build_model("lenet_300_100", {})
    fresh.load_state_dict(load_file(str(out)), strict=True)
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    assert torch.equal(load_pruned(out).fc1.weight, model.fc1.weight)  # the manifest travels in the metadata

    path.write_bytes(path.read_bytes()[:-1])
    bad = subprocess.run([sys.executable, "-m", "modelpress.cli", "unpack", str(path), "-o", str(tmp_path / "x.safetensors")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "truncated" in bad.stderr and not (tmp_path / "x.safetensors").exists()


def test_loader_needs_no_torch(tmp_path):
    """``modelpress.packed`` decodes with numpy and zstandard only."""
    _, path = lenet_packed(tmp_path)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import importlib.util, pathlib\n"
        f"spec = importlib.util.spec_from_file_location('packed', {str(REPO / 'modelpress' / 'packed.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['packed'] = m; spec.loader.exec_module(m)\n"
        f"sd = m.unpack({str(path)!r}); print(sorted(sd), sd['fc1.weight'].dtype)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "fc1.weight" in done.stdout and "float32" in done.stdout
