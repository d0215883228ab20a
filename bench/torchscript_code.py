"""Measure the TorchScript code of real archives against the code scan's caps, and the scan's cost on
adversarial code (docs/security-torchscript.md, ``CodeLimits`` in ``modelpress_core/torchscript_scan.py``).

    PYTHONPATH=$PWD python -m bench.torchscript_code --out bench/results/torchscript_code.json

Real archives: a traced 12-layer BERT (``transformers`` ``BertModel`` with its default config, random
weights), a scripted and a traced ``nn.Transformer``. For each: the code files ``torch.jit.load`` would
compile, their bytes, the AST nodes and the deepest nesting, and whether the scan accepts the archive.
Adversarial: one code file of ``[x,x,x,...]`` at the per-file cap, scanned in a fresh child process
(CPU seconds, peak RSS before and after, the outcome).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from modelpress_core.torchscript_scan import CodeLimits, code_entries, scan_archive, scan_code


def tree_figures(source: bytes) -> tuple[int, int]:
    """(AST nodes, deepest nesting) of one code file."""
    nodes, deepest, stack = 0, 0, [(ast.parse(source.decode("utf-8")), 0)]
    while stack:
        node, depth = stack.pop()
        nodes, deepest = nodes + 1, max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return nodes, deepest


def archive_figures(blob: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = archive.namelist()
        entries = code_entries(names)
        sizes = [archive.getinfo(n).file_size for n in entries]
        trees = [tree_figures(archive.read(n)) for n in entries]
        try:
            scan_archive(archive, names)
            outcome = "accepted"
        except Exception as exc:  # noqa: BLE001 - the figure is what happened
            outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
    return {"archive_bytes": len(blob), "code_files": len(entries), "code_bytes": sum(sizes), "largest_file_bytes": max(sizes),
            "ast_nodes": sum(n for n, _ in trees), "deepest_nesting": max(d for _, d in trees), "scan": outcome}


def real_archives() -> dict:
    import torch
    from transformers import BertConfig, BertModel

    def saved(module) -> bytes:
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        return buffer.getvalue()

    torch.manual_seed(0)
    out = {}
    bert = BertModel(BertConfig(torchscript=True)).eval()
    ids = torch.randint(0, 1000, (1, 16))
    with torch.no_grad():
        out["bert_12_layer_traced"] = archive_figures(saved(torch.jit.trace(bert, (ids,), strict=False)))
    del bert
    transformer = torch.nn.Transformer().eval()
    src, tgt = torch.rand(10, 1, 512), torch.rand(9, 1, 512)
    out["nn_transformer_scripted"] = archive_figures(saved(torch.jit.script(transformer)))
    with torch.no_grad():
        out["nn_transformer_traced"] = archive_figures(saved(torch.jit.trace(transformer, (src, tgt), check_trace=False)))
    return out


def adversarial_one(size: int) -> None:
    """In a fresh process: scan ``size`` bytes of ``[x,x,x,...]``; print the CPU, peak RSS and outcome as JSON."""

    def hwm() -> int:
        return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) // 1024

    source = b"y = [" + b"x," * ((size - 7) // 2) + b"x]\n"
    before, started = hwm(), time.process_time()
    try:
        scan_code(source, "code/__torch__/adversarial.py")
        outcome = "accepted"
    except Exception as exc:  # noqa: BLE001
        outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
    print(json.dumps({"code_bytes": len(source), "cpu_s": round(time.process_time() - started, 2),
                      "peak_rss_mb_before": before, "peak_rss_mb_after": hwm(), "outcome": outcome}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/torchscript_code.json"))
    parser.add_argument("--adversarial-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.adversarial_one:
        adversarial_one(args.adversarial_one)
        return
    limits = CodeLimits()
    out: dict = {"command": "python -m bench.torchscript_code " + " ".join(sys.argv[1:]),
                 "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                             "load_average_at_start": os.getloadavg()},
                 "limits": {"max_total_bytes": limits.max_total_bytes, "max_file_bytes": limits.max_file_bytes,
                            "max_nodes": limits.max_nodes, "max_depth": limits.max_depth}}
    import torch
    import transformers

    out["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    out["real"] = real_archives()
    child = subprocess.run([sys.executable, "-m", "bench.torchscript_code", "--adversarial-one", str(limits.max_file_bytes)],
                           capture_output=True, text=True, check=False)
    out["adversarial_list_at_file_cap"] = json.loads(child.stdout) if child.returncode == 0 else {"error": child.stderr[-300:]}
    out["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
