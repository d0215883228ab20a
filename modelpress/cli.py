"""The ``modelpress`` command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from modelpress.client import DEFAULT_URL, ApiError, ModelpressClient

DEMO_SPEC = {
    "model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
              "input": {"shape": [1, 784], "dtype": "float32"}},
    # the recipe that wins on the digits MLP (bench/results/recipes.md): pruning alone costs accuracy and, in a dense
    # int8 file, no bytes; retrained and stored in the packed format's sparse int8 layout it is ~20x smaller, faster, ~-0.5 pt
    "steps": [
        {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9},
        {"method": "finetune", "kind": "train", "epochs": 5},
        {"method": "quantize", "kind": "dynamic_int8"},
    ],
    "evaluate": {"batch_sizes": [1, 32]},
    "outputs": ["packed"],
}


# exit codes: meaningful to scripts
EXIT_OK = 0  # done (or submitted, without --wait); the job succeeded / is still going
EXIT_JOB_FAILED = 1  # the job ended failed
EXIT_API_ERROR = 2  # the API refused the request (problem details on stderr), or bad usage
EXIT_JOB_CANCELLED = 3  # the job ended cancelled or expired
EXIT_UNREACHABLE = 4  # no answer from the API (connection refused, timeout)
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`modelpress list | head -1`): 128 + SIGPIPE, as a shell reports it

STATE_EXIT = {"failed": EXIT_JOB_FAILED, "cancelled": EXIT_JOB_CANCELLED, "expired": EXIT_JOB_CANCELLED}


def _settings():
    from modelpress_core.config import Settings

    return Settings()


def cmd_up(args) -> int:
    from modelpress.stack import Stack

    settings = _settings()
    import os

    stack = Stack(
        data_dir=Path(args.data_dir or settings.data_dir),
        api_host=args.host or settings.api_host,
        api_port=args.port or settings.api_port,
        redis_url=os.environ.get("MODELPRESS_REDIS_URL"),
        workers=args.workers,
        queues=args.queues,
    )
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start()
        print(f"modelpress is up at {stack.base_url}  (logs: {stack.log_dir}; Ctrl-C stops everything)", flush=True)
        from modelpress_core.config import AuthMode, is_loopback

        if settings.auth == AuthMode.required or not is_loopback(stack.api_host):
            print("API keys are required (non-loopback bind or MODELPRESS_AUTH=required): "
                  "`modelpress keys create --tenant NAME` makes one", flush=True)
        while not stopping:
            for name in stack.supervise_once():
                print(f"{name} died; restarted it (see {stack.log_dir / (name + '.log')})", flush=True)
            time.sleep(1)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        stack.stop()
    return 0


def progress_bar(job: dict, width: int = 30) -> str:
    p = job.get("progress") or {}
    fraction = float(p.get("fraction") or 0.0)
    filled = int(round(fraction * width))
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:5.0%} {job['state']:<10} {p.get('message', '')[:50]:<50}"


def cmd_demo(args) -> int:
    """Train, compress over HTTP with the held-out digits as the labelled eval set, print before/after; then
    remove the demo's folder (model, artifact, the stack's data and logs), or with --keep say where it is."""
    import shutil
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="modelpress-demo-"))
    try:
        return _demo(workdir)
    finally:
        if args.keep:
            print(f"\nthe demo's files are in {workdir} (model, artifact, eval set, the stack's logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"\nremoved the demo's files ({workdir}); `modelpress demo --keep` keeps them")


def _demo(workdir: Path) -> int:
    import numpy as np
    import torch

    from modelpress.datasets import digits_28x28
    from modelpress.examples import accuracy, save_digits_mlp
    from modelpress.redis_server import free_port
    from modelpress.stack import Stack

    print("modelpress demo: an MLP trained on real handwritten digits, 90% pruned, retrained, int8-quantized and packed, over HTTP\n")
    print("1/5 training mlp [784, 300, 100, 10] on scikit-learn digits (28x28)...", flush=True)
    model_path, eval_path = workdir / "mlp.safetensors", workdir / "eval.npz"
    save_digits_mlp(model_path)
    x_train, y_train, x_test, y_test = digits_28x28()
    data = {"train": workdir / "train.npz", "eval": eval_path}
    np.savez(data["train"], inputs=x_train, labels=y_train)  # the retraining after pruning
    np.savez(data["eval"], inputs=x_test, labels=y_test)  # held-out digits: the server measures accuracy on them
    print(f"2/5 starting a private stack (redis-server, API, Celery worker) in {workdir / 'stack'} ...", flush=True)
    with Stack(data_dir=workdir / "stack", api_port=free_port()) as stack, ModelpressClient(stack.base_url) as client:
        job = client.submit(model_path, DEMO_SPEC, data=data)
        print(f"3/5 submitted job {job['id']} to POST {stack.base_url}/jobs (train digits to retrain, held-out digits as its eval set)", flush=True)
        job = client.wait(job["id"], on_update=lambda j: print(progress_bar(j), end="", flush=True))
        print()
        if job["state"] != "succeeded":
            print(f"the job ended {job['state']}: {json.dumps(job.get('error'), indent=2)}", file=sys.stderr)
            return 1
        artifact = job["artifacts"][0]
        path = client.download(job["id"], artifact["name"], workdir)
        print(f"4/5 downloaded {artifact['name']} ({artifact['bytes']} bytes), sha256 verified: {artifact['sha256'][:16]}...")
        metrics = client.metrics(job["id"])
    print("5/5 stack stopped. Evaluating both models here on the same held-out digits...\n")
    from safetensors.torch import load_file

    from modelpress.artifacts import load_packed
    from modelpress.examples import MLP_SIZES

    def mlp():
        return torch.nn.Sequential(
            torch.nn.Linear(MLP_SIZES[0], MLP_SIZES[1]), torch.nn.ReLU(),
            torch.nn.Linear(MLP_SIZES[1], MLP_SIZES[2]), torch.nn.ReLU(),
            torch.nn.Linear(MLP_SIZES[2], MLP_SIZES[3]),
        )

    original = mlp()
    original.load_state_dict(load_file(str(model_path)))
    compressed = load_packed(path, skeleton=mlp())
    print(before_after_table(metrics, accuracy(original.eval(), x_test, y_test), accuracy(compressed, x_test, y_test)))
    print("\n" + verdict_line(metrics))
    for warning in metrics["verdict"]["warnings"]:
        print(f"note: {warning}")
    return 0


def before_after_table(metrics: dict, acc_before: float | None = None, acc_after: float | None = None) -> str:
    b, a, v = metrics["before"], metrics["after"], metrics["verdict"]
    rows = [
        ("file size (bytes)", f"{b['file_bytes']:,}", f"{a['file_bytes']:,}", f"{v['size_ratio']:.2f}x smaller"),
        ("nonzero parameters", f"{b['nonzero_parameters']:,}", f"{a['nonzero_parameters']:,}", f"sparsity {a['sparsity']:.0%}"),
    ]
    if "latency_ms" in b:
        lb, la = b["latency_ms"], a["latency_ms"]
        rows.append((f"latency p50 ms (batch {lb['batch_size']})", f"{lb['p50']:.3f}", f"{la['p50']:.3f}",
                     f"{v['speedup']:.2f}x {'faster' if v['faster'] else '(not faster)'}"))
    if acc_before is not None and acc_after is not None:
        rows.append(("test accuracy", f"{acc_before:.2%}", f"{acc_after:.2%}", f"{(acc_after - acc_before) * 100:+.1f} points"))
    rows.append(("output cosine vs original", "1.0", f"{metrics['fidelity']['cosine_similarity']:.4f}", ""))
    widths = [max(len(r[i]) for r in rows + [("", "before", "after", "change")]) for i in range(4)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(("", "before", "after", "change"), widths))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def cmd_example_model(args) -> int:
    from modelpress.examples import save_digits_mlp

    acc = save_digits_mlp(args.out)
    print(f"wrote {args.out}: mlp [784, 300, 100, 10] trained on real digits, test accuracy {acc:.2%}")
    return 0


def cmd_unpack(args) -> int:
    """A packed file (.mpk) to a plain safetensors state_dict; torch-free, no pickle."""
    from modelpress.packed import PackedFormatError, unpack_to_safetensors

    out = Path(args.out or Path(args.file).with_suffix(".safetensors"))
    try:
        header = unpack_to_safetensors(args.file, out)
    except (PackedFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED
    tensors = header["tensors"]
    if args.json:
        print(json.dumps({"file": str(args.file), "out": str(out), "tensors": len(tensors), "bytes": out.stat().st_size,
                          "encodings": {t["name"]: t["encoding"] for t in tensors}}))
    else:
        counts: dict[str, int] = {}
        for t in tensors:
            counts[t["encoding"]] = counts.get(t["encoding"], 0) + 1
        how = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        print(f"wrote {out}: {len(tensors)} tensors ({how}), {out.stat().st_size:,} bytes"
              + (f"; architecture {header['manifest']['architecture']!r} in its metadata" if header.get("manifest") else ""))
    return EXIT_OK


def default_url(environ=None) -> str:
    import os

    return ((os.environ if environ is None else environ).get("MODELPRESS_URL") or DEFAULT_URL).rstrip("/")


def _client(args) -> ModelpressClient:
    return ModelpressClient(args.url, api_key=args.api_key)


class UsageError(Exception):
    """Bad usage the command cannot recover from; main() prints it and exits 2."""


def keys_redis_url(redis_url: str | None, data_dir: str | None, environ=None) -> str:
    """Where the keys live, never a guess: --redis-url, else MODELPRESS_REDIS_URL, else the URL file of the
    private redis-server ``modelpress up`` started in the data dir (--data-dir, else MODELPRESS_DATA_DIR or
    ~/.modelpress). Raises UsageError when none of these exists."""
    import os

    from modelpress.stack import embedded_redis_url

    environ = os.environ if environ is None else environ
    if redis_url:
        return redis_url
    if environ.get("MODELPRESS_REDIS_URL"):
        return environ["MODELPRESS_REDIS_URL"]
    directory = Path(data_dir or environ.get("MODELPRESS_DATA_DIR") or _settings().data_dir).expanduser()
    embedded = embedded_redis_url(directory)
    if embedded:
        return embedded
    raise UsageError(
        f"no Redis to keep the keys in: {directory / 'redis' / 'url'} does not exist (no `modelpress up` has run with that "
        "data dir). Pass --redis-url redis://..., set MODELPRESS_REDIS_URL, or --data-dir the stack's data dir"
    )


def _keys_repo(args):
    import redis

    from modelpress_core.storage.apikeys import ApiKeyRepository

    url = keys_redis_url(args.redis_url, args.data_dir)
    return ApiKeyRepository(redis.Redis.from_url(url, socket_timeout=10))


def cmd_keys_create(args) -> int:
    record, token = _keys_repo(args).create(args.tenant, args.name or "")
    if args.json:
        print(json.dumps({**record.public(), "key": token}, indent=2))
    else:
        print(f"created key {record.key_id} for tenant {record.tenant!r}; it is shown only this once:", file=sys.stderr)
        print(token)
    return EXIT_OK


def cmd_keys_list(args) -> int:
    keys = [k.public() for k in _keys_repo(args).list()]
    if args.json:
        print(json.dumps(keys, indent=2))
    else:
        for k in keys:
            state = f"revoked {k['revoked_at'][:19]}" if k["revoked_at"] else "active"
            print(f"{k['key_id']}  {k['tenant']:<20} {state:<28} {k['created_at'][:19]}  {k['name']}")
    return EXIT_OK


def cmd_keys_revoke(args) -> int:
    from modelpress_core.errors import NotFound

    try:
        record = _keys_repo(args).revoke(args.key_id)
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    if args.json:
        print(json.dumps(record.public(), indent=2))
    else:
        print(f"revoked {record.key_id} (tenant {record.tenant!r})")
    return EXIT_OK


def follow(client: ModelpressClient, job_id: str, on_update=None) -> dict:
    """Wait for the job, fed by its event stream; falls back to polling if the stream fails."""
    import httpx

    try:
        for event in client.events(job_id, timeout=120):
            if event["event"] in ("state", "progress", "end") and on_update:
                on_update(event)
            if event["event"] == "end":
                break
    except (httpx.HTTPError, ApiError, ValueError) as exc:
        print(f"\n(event stream unavailable: {exc}; polling)", file=sys.stderr)
        return client.wait(job_id, on_update=on_update)
    return client.job(job_id)


def verdict_line(metrics: dict) -> str:
    v, f = metrics["verdict"], metrics["fidelity"]
    parts = [f"{v['size_ratio']:.2f}x {'smaller' if v['smaller'] else 'size: NOT smaller'}"]
    if v.get("speedup") is not None:
        how = "faster" if v.get("faster") else "not faster"
        if v.get("simulated_only"):
            how += "; simulated only: no real low-precision kernel ran"
        parts.append(f"{v['speedup']:.2f}x speed ({how})")
    if v.get("macs_ratio") is not None:
        parts.append(f"{v['macs_ratio']:.2f}x fewer MACs" if v["macs_ratio"] > 1.0 else "same MACs")
    q = metrics.get("quality")
    if q and q.get("metric", "top1_accuracy") == "top1_accuracy":
        lo, hi = q.get("accuracy_drop_ci95") or (None, None)
        parts.append(f"top-1 accuracy {q['top1_accuracy_before']:.1%} -> {q['top1_accuracy_after']:.1%}"
                     + (f" (drop {q['accuracy_drop'] * 100:.1f} points, 95% CI {lo * 100:.1f} to {hi * 100:.1f})" if lo is not None else ""))
    elif q and q.get("metric") == "mse":
        parts.append(f"MSE {q['mse_before']:.4g} -> {q['mse_after']:.4g}")
    else:
        parts.append(f"output cosine {f['cosine_similarity']:.4f}")
        if f.get("top1_agreement") is not None:
            parts.append(f"top-1 agreement {f['top1_agreement']:.1%} ({f.get('source', 'synthetic')} inputs)")
    return "verdict: " + ", ".join(parts)


def cmd_submit(args) -> int:
    spec = json.loads(Path(args.spec).read_text())
    with _client(args) as client:
        data = {part: getattr(args, part) for part in ("calibration", "train", "eval") if getattr(args, part)}
        job = client.submit(args.model, spec, idempotency_key=args.idempotency_key, data=data or None)
        if not args.json:
            print(f"submitted {job['id']}", file=sys.stderr)
        if args.wait or args.download:
            show = None if args.json else lambda j: print(progress_bar(j), end="", file=sys.stderr, flush=True)
            job = follow(client, job["id"], on_update=show)
            if not args.json:
                print(file=sys.stderr)
        metrics = client.metrics(job["id"]) if job["state"] == "succeeded" else None
        if args.download and job["state"] == "succeeded":
            Path(args.download).mkdir(parents=True, exist_ok=True)
            for artifact in job["artifacts"]:
                client.download(job["id"], artifact["name"], args.download)
        if args.json:
            print(json.dumps({**job, "verdict": metrics["verdict"] if metrics else None}, indent=2))
        else:
            _print(job, args)
            if metrics:
                _print_verdict(metrics)
                print(f"report: {job['links']['report']}")
        return STATE_EXIT.get(job["state"], EXIT_OK)


def cmd_status(args) -> int:
    with _client(args) as client:
        job = client.job(args.job_id)
        metrics = client.metrics(job["id"]) if job["state"] == "succeeded" else None
    if args.json:
        print(json.dumps({**job, "verdict": metrics["verdict"] if metrics else None}, indent=2))
    else:
        _print(job, args)
        if metrics:
            _print_verdict(metrics)
    return STATE_EXIT.get(job["state"], EXIT_OK)


def _print_verdict(metrics: dict) -> None:
    print(verdict_line(metrics))
    for warning in metrics["verdict"]["warnings"]:
        print(f"warning: {warning}")


def cmd_logs(args) -> int:
    with _client(args) as client:
        if args.follow:
            for line in client.logs(args.job_id, tail=args.tail):
                _print_log(line, args)
            for event in client.events(args.job_id, timeout=120):
                if event["event"] == "log":
                    _print_log(event, args)
                elif event["event"] == "end":
                    return STATE_EXIT.get(event["state"], EXIT_OK)
            return EXIT_OK
        lines = client.logs(args.job_id, tail=args.tail)
    if args.json:
        print(json.dumps(lines, indent=2))
    else:
        for line in lines:
            _print_log(line, args)
    return EXIT_OK


def _print_log(line: dict, args) -> None:
    if args.json:
        print(json.dumps({k: line[k] for k in ("ts", "level", "message")}), flush=True)
    else:
        print(f"{line['ts']}  {line['level']:<7} {line['message']}", flush=True)


def cmd_report(args) -> int:
    out = Path(args.out or f"{args.job_id}-report.html")
    with _client(args) as client:
        html = client.report(args.job_id, out)
    if args.json:
        print(json.dumps({"job_id": args.job_id, "path": str(out), "bytes": len(html.encode())}))
    else:
        print(out)
    return EXIT_OK


def cmd_list(args) -> int:
    with _client(args) as client:
        page = client.jobs(state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps(page, indent=2))
    else:
        for job in page["items"]:
            print(f"{job['id']}  {job['state']:<10} {job['created_at']}")
    return 0


def cmd_cancel(args) -> int:
    with _client(args) as client:
        _print(client.purge(args.job_id) if args.purge else client.cancel(args.job_id), args)
    return 0


def cmd_download(args) -> int:
    with _client(args) as client:
        job = client.job(args.job_id)
        names = [args.name] if args.name else [a["name"] for a in job["artifacts"]]
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for name in names:
            print(client.download(args.job_id, name, args.out))
    return 0


def _print(job: dict, args) -> None:
    if getattr(args, "json", False):
        print(json.dumps(job, indent=2))
        return
    print(f"{job['id']}: {job['state']}")
    if job.get("error"):
        print(f"  error: {job['error'].get('detail')}")
    if job.get("summary"):
        print("  " + ", ".join(f"{k}={v}" for k, v in job["summary"].items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelpress", description="Compress PyTorch models over HTTP.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run redis-server, the API and a worker here, until Ctrl-C")
    up.add_argument("--host", default=None)
    up.add_argument("--port", type=int, default=None)
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--queues", default="cpu", help="queues the workers consume: cpu, gpu or cpu,gpu")
    up.add_argument("--data-dir", default=None)
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser("demo", help="train a real model, compress it over HTTP, print before/after")
    demo.add_argument("--keep", action="store_true", help="keep the demo's folder (model, artifact, logs) and print where it is")
    demo.set_defaults(func=cmd_demo)

    ex = sub.add_parser("example-model", help="write a trained mlp [784,300,100,10] as safetensors")
    ex.add_argument("-o", "--out", default="mlp.safetensors")
    ex.set_defaults(func=cmd_example_model)

    up_ = sub.add_parser("unpack", help="turn a packed artifact (.mpk) into a plain safetensors state_dict")
    up_.add_argument("file")
    up_.add_argument("-o", "--out", help="safetensors file to write (default: FILE with .safetensors)")
    up_.add_argument("--json", action="store_true", help="machine-readable output")
    up_.set_defaults(func=cmd_unpack)

    def remote(p):
        p.add_argument("--url", default=default_url(), help=f"the API's base URL (default: $MODELPRESS_URL, else {DEFAULT_URL})")
        p.add_argument("--api-key", default=None, help="API key (default: $MODELPRESS_API_KEY); not needed when the server runs with auth off")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    keys = sub.add_parser("keys", help="manage API keys (directly in Redis: --redis-url, MODELPRESS_REDIS_URL or the data dir's stack)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def keystore(p):
        p.add_argument("--redis-url", default=None,
                       help="default: $MODELPRESS_REDIS_URL, else the private redis-server of the data dir's stack; never a guess")
        p.add_argument("--data-dir", default=None, help="the data dir of a `modelpress up` stack (default: $MODELPRESS_DATA_DIR or ~/.modelpress)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    kc = keystore(keys_sub.add_parser("create", help="create a key for a tenant; prints the key once"))
    kc.add_argument("--tenant", required=True)
    kc.add_argument("--name", default="", help="a label, e.g. who or what uses the key")
    kc.set_defaults(func=cmd_keys_create)
    keystore(keys_sub.add_parser("list", help="list keys (ids, tenants, names; never secrets)")).set_defaults(func=cmd_keys_list)
    kr = keystore(keys_sub.add_parser("revoke", help="revoke a key by its id"))
    kr.add_argument("key_id")
    kr.set_defaults(func=cmd_keys_revoke)

    s = remote(sub.add_parser("submit", help="submit a job"))
    s.add_argument("model")
    s.add_argument("--spec", required=True, help="spec JSON file")
    s.add_argument("--wait", action="store_true")
    s.add_argument("--idempotency-key", help="retry-safe: the same key and request return the same job")
    s.add_argument("--download", metavar="DIR")
    for part, what in (("calibration", "calibration inputs (static_int8)"), ("train", "training data (finetune, distill, qat)"),
                       ("eval", "labelled evaluation data (accuracy before/after)")):
        s.add_argument(f"--{part}", metavar="FILE", help=f"{what}: .npz or safetensors with 'inputs' and optional 'labels'")
    s.set_defaults(func=cmd_submit)

    st = remote(sub.add_parser("status", help="show a job"))
    st.add_argument("job_id")
    st.set_defaults(func=cmd_status)

    ls = remote(sub.add_parser("list", help="list jobs"))
    ls.add_argument("--state")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=cmd_list)

    c = remote(sub.add_parser("cancel", help="cancel a job (or, with --purge, remove a finished job's files)"))
    c.add_argument("job_id")
    c.add_argument("--purge", action="store_true", help="a finished job: remove its inputs and artifacts now")
    c.set_defaults(func=cmd_cancel)

    lg = remote(sub.add_parser("logs", help="print a job's log"))
    lg.add_argument("job_id")
    lg.add_argument("--tail", type=int, help="only the last N lines")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")
    lg.set_defaults(func=cmd_logs)

    rp = remote(sub.add_parser("report", help="save a finished job's HTML report"))
    rp.add_argument("job_id")
    rp.add_argument("-o", "--out", help="file to write (default: JOB-report.html)")
    rp.set_defaults(func=cmd_report)

    d = remote(sub.add_parser("download", help="download artifacts"))
    d.add_argument("job_id")
    d.add_argument("name", nargs="?")
    d.add_argument("-o", "--out", default=".")
    d.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    import httpx

    from modelpress_core.errors import ModelpressError

    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except ApiError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"status": exc.status, **exc.problem}, indent=2), file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
            if exc.problem.get("errors") or exc.problem.get("missing"):
                print(json.dumps(exc.problem, indent=2), file=sys.stderr)
        return EXIT_API_ERROR
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    except ModelpressError as exc:  # e.g. `keys create` with an invalid tenant name
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    except httpx.TransportError as exc:
        print(f"error: no answer from {getattr(args, 'url', 'the API')}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except OSError as exc:  # a missing or unreadable model, data or spec file; a download folder we cannot write
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_API_ERROR
    except json.JSONDecodeError as exc:  # the --spec file is not JSON
        print(f"error: the spec file is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_API_ERROR


def _stdout_gone() -> int:
    """The reader closed stdout: say nothing more there (Python would print a traceback when it flushes at exit)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
