"""Measure the upload parsers' bounds (docs/limits.md): bytes per entry of real safetensors headers,
the CPU of the depth scan and of a whole header check, and peak memory on adversarial headers.

    PYTHONPATH=$PWD python -m bench.parser_bounds --out bench/results/parser_bounds.json

Each adversarial case runs in a fresh child process; its figure is that child's VmHWM (peak RSS)
before and after the one check, and the check's CPU seconds (``time.process_time``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelpress_core import intake
from modelpress_core.jsonscan import scan_object

N = 100_000
LLAMA = ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
         "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight",
         "post_attention_layernorm.weight"]
BERT = ["attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight", "attention.self.key.bias",
        "attention.self.value.weight", "attention.self.value.bias", "attention.output.dense.weight",
        "attention.output.dense.bias", "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
        "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight", "output.dense.bias",
        "output.LayerNorm.weight", "output.LayerNorm.bias"]


def names(prefix: str, parts: list[str], n: int) -> list[str]:
    return [f"{prefix}.{i // len(parts)}.{parts[i % len(parts)]}" for i in range(n)]


def real_header(tensor_names: list[str]) -> tuple[bytes, bytes]:
    """A file safetensors itself writes (1 x 1 tensors), and its header with the shapes and offsets
    of 4096 x 11008 bf16 tensors (a 7B model's digits)."""
    import torch
    from safetensors.torch import save

    blob = save({name: torch.zeros(1, 1) for name in tensor_names}, metadata={"format": "pt"})
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    offset, size = 0, 4096 * 11008 * 2
    for name in tensor_names:  # the real digits of a 7B model's offsets and shapes
        header[name] = {"dtype": "BF16", "shape": [4096, 11008], "data_offsets": [offset, offset + size]}
        offset += size
    return json.dumps(header, separators=(",", ":")).encode(), blob


def write(path: Path, raw: bytes, data_len: int) -> Path:
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_len)
    return path


def adversarial(d: Path) -> list[tuple[str, Path]]:
    limit = intake.header_limit(N)
    item = '"{name}.{i:06d}":{{"dtype":"BF16","shape":[1,1],"data_offsets":[{a},{b}]}}'
    bare = len("{" + ",".join(item.format(name="", i=i, a=2 * i, b=2 * i + 2) for i in range(N)) + "}")
    pad = "m" * ((limit - bare) // N)
    full = ("{" + ",".join(item.format(name=pad, i=i, a=2 * i, b=2 * i + 2) for i in range(N)) + "}").encode()
    lists = ",".join(f'"k{i}":[' + ",".join(['"ab"'] * 40) + "]" for i in range(N)).encode()
    return [
        ("valid, 100,000 entries, exactly the limit", write(d / "full", full + b" " * (limit - len(full)), 2 * N)),
        ("50,000 deep", write(d / "deep", b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}", 0)),
        ("deep, the limit's length", write(d / "deeper", b'{"a":' + b"[" * (limit // 2 - 4) + b"]" * (limit // 2 - 4) + b"}", 0)),
        ("one member of the limit's length", write(d / "one", b'{"a":["' + b"x" * (limit - 12) + b'"]}', 0)),
        ("100,000 members of short-string lists", write(d / "lists", b"{" + lists[: limit - 200].rsplit(b',"k', 1)[0] + b"}", 0)),
        ("over 100,001 members", write(d / "many", b"{" + b'"a":1,' * ((limit - 8) // 6) + b'"a":1}', 0)),
        ("one byte over the limit", write(d / "over", b"{" + b" " * (limit - 1) + b"}", 0)),
    ]


def check_one(path: str) -> None:
    def hwm() -> int:
        return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) // 1024

    before, started = hwm(), time.process_time()
    try:
        header = intake.read_safetensors_header(Path(path), max_tensors=N, max_parameters=2 * 10**9)
        outcome = f"accepted, {len(header.tensors)} tensors"
    except Exception as exc:  # noqa: BLE001 - the figure is what happened
        outcome = f"{getattr(exc, 'status', '?')} {type(exc).__name__}: {str(exc)[:70]}"
    cpu = time.process_time() - started
    print(json.dumps({"cpu_s": round(cpu, 3), "peak_rss_mb_before": before, "peak_rss_mb_after": hwm(), "outcome": outcome}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here (and a .md next to it)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        check_one(args.one)
        return
    out: dict = {"command": "python -m bench.parser_bounds " + " ".join(sys.argv[1:]),
                 "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                             "load_average_at_start": os.getloadavg()},
                 "header_limit_bytes": intake.header_limit(N), "tensors": N, "real": {}, "adversarial": []}
    print(f"header limit for {N} tensors: {intake.header_limit(N)} bytes")
    for label, parts, prefix in (("llama-style", LLAMA, "model.layers"), ("bert-style", BERT, "bert.encoder.layer")):
        raw, blob = real_header(names(prefix, parts, N))
        (as_written,) = struct.unpack("<Q", blob[:8])
        print(f"{label}: safetensors writes {as_written / N:.1f} bytes/entry; with 7B shapes/offsets {len(raw) / N:.1f}")
        started = time.process_time()
        scan_object(raw, max_depth=3, max_members=N + 1)
        scanned = time.process_time() - started
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "h.safetensors"
            path.write_bytes(blob)
            started = time.process_time()
            intake.read_safetensors_header(path, max_tensors=N, max_parameters=10**9)
            checked = time.process_time() - started
        loads = _json_loads_s(raw)
        print(f"  depth scan {scanned:.3f} s CPU ({len(raw) / scanned / 1e6:.0f} MB/s); json.loads of it whole "
              f"{loads:.3f} s; the whole check of the file as written {checked:.3f} s")
        out["real"][label] = {"header_bytes_as_written": as_written, "bytes_per_entry_as_written": round(as_written / N, 1),
                              "header_bytes_7b_digits": len(raw), "bytes_per_entry_7b_digits": round(len(raw) / N, 1),
                              "depth_scan_cpu_s": round(scanned, 3), "depth_scan_mb_per_s": round(len(raw) / scanned / 1e6),
                              "json_loads_cpu_s": round(loads, 3), "whole_check_cpu_s": round(checked, 3)}
    with tempfile.TemporaryDirectory() as d:
        for label, path in adversarial(Path(d)):
            child = subprocess.run([sys.executable, "-m", "bench.parser_bounds", "--one", str(path)],
                                   capture_output=True, text=True, check=False)
            (header_bytes,) = struct.unpack("<Q", path.read_bytes()[:8])
            print(f"{label:42s} {header_bytes:>10d} B: {child.stdout.strip()}{child.stderr[-300:]}")
            figures = json.loads(child.stdout) if child.returncode == 0 else {"error": child.stderr[-300:]}
            out["adversarial"].append({"case": label, "header_bytes": header_bytes, **figures})
    out["machine"]["load_average_at_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(markdown(out))


def markdown(out: dict) -> str:
    lines = ["# Upload parser bounds (`bench/parser_bounds.py`)", "", f"Command: `{out['command']}`; {out['machine']['cpus']} CPUs, "
             f"load average at start / end {[round(v, 2) for v in out['machine']['load_average_at_start']]} / "
             f"{[round(v, 2) for v in out['machine']['load_average_at_end']]}. Header limit for {out['tensors']:,} tensors: "
             f"{out['header_limit_bytes']:,} bytes.", "",
             "| real header (100,000 entries) | bytes/entry as written | with 7B shapes/offsets | depth scan CPU s | MB/s | json.loads CPU s | whole check CPU s |",
             "|---|---|---|---|---|---|---|"]
    for label, r in out["real"].items():
        lines.append(f"| {label} | {r['bytes_per_entry_as_written']} | {r['bytes_per_entry_7b_digits']} | {r['depth_scan_cpu_s']} | "
                     f"{r['depth_scan_mb_per_s']} | {r['json_loads_cpu_s']} | {r['whole_check_cpu_s']} |")
    lines += ["", "| adversarial header | bytes | check CPU s | peak RSS MB before → after | outcome |", "|---|---|---|---|---|"]
    for r in out["adversarial"]:
        lines.append(f"| {r['case']} | {r['header_bytes']:,} | {r.get('cpu_s', '-')} | {r.get('peak_rss_mb_before', '-')} → "
                     f"{r.get('peak_rss_mb_after', '-')} | {r.get('outcome', r.get('error', ''))} |")
    return "\n".join(lines) + "\n"


def _json_loads_s(raw: bytes) -> float:
    started = time.process_time()
    json.loads(raw)
    return time.process_time() - started


if __name__ == "__main__":
    main()
