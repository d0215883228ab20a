"""Goal-driven search: try candidate pipelines cheapest first, stop at the first that meets the goal.

The ladder is data: each ``Candidate`` names its steps (or how to build them from what the search
has learned, e.g. the most sensitive layers), its cost rank, the data it needs, an applicability
predicate and a rough upper bound on how much smaller it can make the file. Adding a method to the
search is one ``Candidate(...)`` line in ``LADDER``.

Every candidate runs through the same functions as a plain job (``worker.pipeline.compress``,
``write_outputs``, ``measure``), so its figures are the figures a job with those steps would report.
The chosen candidate's artifacts become the job's artifacts; every candidate's row, the Pareto
front over (size, latency, accuracy), the goal's verdict with a plain diagnosis and the per-layer
sensitivity (when the search measured it) go into the metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from modelpress_core.config import get_settings
from modelpress_core.errors import MAX_DETAIL_CHARS, bounded_text
from modelpress_core.goal import Goal
from modelpress_core.metrics import METRICS_SCHEMA
from modelpress_core.spec import JobSpec
from modelpress_core.steps import Sensitivity
from worker.pipeline import PipelineResult, Prepared, Progress, artifact_table, compress, measure, summary_of, write_outputs

log = logging.getLogger("modelpress.search")

StepsFor = Callable[["SearchContext"], list[dict]]
Predicate = Callable[["SearchContext"], str | None]  # None when it applies, else why not


@dataclass(frozen=True)
class Candidate:
    """One rung of the ladder."""

    label: str
    cost: int  # rank: the ladder runs in increasing cost
    steps: tuple[dict, ...] | StepsFor
    needs: tuple[str, ...] = ()  # data parts ("train", "eval", "train:labels", ...) and/or "sensitivity" (the per-layer table)
    max_ratio: float | None = None  # at most this many times smaller than the fp32 upload (None: unknown); skips hopeless size goals
    outputs: tuple[str, ...] = ()  # artifact formats it wants (default: the job spec's default for its steps)
    when: Predicate | None = None

    def build(self, sc: "SearchContext") -> list[dict]:
        return [dict(s) for s in self.steps] if isinstance(self.steps, tuple) else self.steps(sc)


# -- applicability predicates --------------------------------------------------------------------

def has_layers(*type_names: str) -> Predicate:
    def check(sc: "SearchContext") -> str | None:
        if sc.layer_types & set(type_names):
            return None
        return f"the model has no {'/'.join(type_names)} layer"

    return check


class NotApplicable(Exception):
    """Raised by a candidate's step builder when what the search learned makes it pointless."""


def needs_accuracy_goal(sc: "SearchContext") -> str | None:
    return None if sc.goal.max_accuracy_drop is not None else "keeping layers in float only helps an accuracy goal"


def available(*, steps: tuple[str, ...] = (), outputs: tuple[str, ...] = ()) -> Predicate:
    """Applies only once this modelpress has these step kinds ("method:kind") and output formats."""

    def check(sc: "SearchContext") -> str | None:
        from modelpress_core.formats import FORMATS
        from modelpress_core.steps import ALL_STEP_TYPES

        known = {f"{t.model_fields['method'].default}:{t.model_fields['kind'].default}" for t in ALL_STEP_TYPES}
        missing = [s for s in steps if s not in known] + [f"output {o!r}" for o in outputs if o not in FORMATS]
        return f"this modelpress has no {', '.join(missing)}" if missing else None

    return check


def all_of(*predicates: Predicate) -> Predicate:
    def check(sc: "SearchContext") -> str | None:
        return next((r for p in predicates if (r := p(sc))), None)

    return check


def sensitive_steps(template: dict) -> StepsFor:
    """``template`` with the most sensitive layers excluded (see ``SearchContext.sensitive_layers``)."""

    def build(sc: "SearchContext") -> list[dict]:
        layers = sc.sensitive_layers()
        if not layers and not sc.probing:
            raise NotApplicable(f"no layer's int8 drop alone exceeds a quarter of max_accuracy_drop ({sc.goal.max_accuracy_drop:g})")
        return [{**template, "exclude": layers}]

    return build


DYNAMIC_INT8 = {"method": "quantize", "kind": "dynamic_int8"}
STATIC_INT8 = {"method": "quantize", "kind": "static_int8"}
FINETUNE = {"method": "finetune", "kind": "train", "epochs": 3, "distill_from_original": True}  # labels optional


def deep_compression(amount: float, bits: int = 5, epochs: int = 10) -> tuple[dict, ...]:
    """Han et al.'s Deep Compression: magnitude pruning, retraining with the zeros kept, k-means weight
    sharing (codebook fine-tuned on the labelled train data), stored packed (sparse indexes + codes)."""
    return ({"method": "prune", "kind": "magnitude", "scope": "global", "amount": amount},
            {**FINETUNE, "epochs": epochs},
            {"method": "quantize", "kind": "kmeans", "bits": bits})


DEEP = all_of(available(steps=("quantize:kmeans",), outputs=("packed",)), has_layers("Linear", "Conv2d"))

# Cheapest first (the order here is for reading; the search sorts by cost).
LADDER: list[Candidate] = [
    Candidate("fp16", 10, ({"method": "quantize", "kind": "fp16"},), max_ratio=2.0),
    Candidate("dynamic int8", 20, (DYNAMIC_INT8,), max_ratio=4.0, when=has_layers("Linear", "LSTM", "GRU")),
    Candidate("dynamic int8, sensitive layers in float", 30, sensitive_steps(DYNAMIC_INT8), needs=("sensitivity",),
              max_ratio=4.0, when=needs_accuracy_goal),
    Candidate("dynamic int8 (onnxruntime)", 35, ({**DYNAMIC_INT8, "runtime": "onnxruntime"},), max_ratio=4.0,
              when=has_layers("Linear")),
    Candidate("static int8", 40, (STATIC_INT8,), max_ratio=4.0),
    Candidate("static int8 (onnxruntime)", 45, ({**STATIC_INT8, "runtime": "onnxruntime"},), max_ratio=4.0),
    Candidate("static int8, sensitive layers in float", 50, sensitive_steps(STATIC_INT8), needs=("sensitivity",), max_ratio=4.0,
              when=needs_accuracy_goal),
    Candidate("structured prune 30% + static int8", 60,
              ({"method": "prune", "kind": "structured", "amount": 0.3}, STATIC_INT8), max_ratio=8.0),
    Candidate("low-rank (95% energy) + dynamic int8", 70,
              ({"method": "lowrank", "kind": "svd", "energy": 0.95}, DYNAMIC_INT8), max_ratio=16.0, when=has_layers("Linear")),
    Candidate("QAT int8", 90, ({"method": "quantize", "kind": "qat"},), needs=("train:labels",), max_ratio=4.0),
    Candidate("structured prune 50% + finetune + static int8", 100,
              ({"method": "prune", "kind": "structured", "amount": 0.5}, FINETUNE, STATIC_INT8), needs=("train",), max_ratio=16.0),
    Candidate("deep compression: prune 92% + finetune + kmeans 5-bit, packed", 200, deep_compression(0.92), needs=("train:labels",),
              max_ratio=60.0, outputs=("packed",), when=DEEP),
    Candidate("deep compression: prune 95% + finetune + kmeans 5-bit, packed", 210, deep_compression(0.95), needs=("train:labels",),
              max_ratio=90.0, outputs=("packed",), when=DEEP),
    Candidate("distill to a 50%-pruned student + static int8", 300,
              ({"method": "distill", "kind": "hinton", "student": {"prune_amount": 0.5}}, STATIC_INT8), needs=("train",), max_ratio=16.0),
]


# -- the search's state ---------------------------------------------------------------------------

@dataclass
class SearchContext:
    prepared: Prepared
    goal: Goal
    check_cancelled: Callable[[], None]
    deadline: float
    layer_types: set[str] = field(default_factory=set)
    sensitivity_table: dict | None = None
    sensitivity_seconds: float = 0.0
    probing: bool = False  # while checking applicability: build steps without measuring anything

    @property
    def spec(self) -> JobSpec:
        return self.prepared.spec

    def has_data(self, part: str) -> bool:
        return part in self.prepared.datasets

    def sensitivity(self) -> dict:
        """Per-layer int8 sensitivity of the original, measured once, on the goal's metric."""
        if self.sensitivity_table is None:
            from worker.methods.sensitivity import sensitivity

            started = time.monotonic()
            settings = get_settings()
            ctx = self.prepared.context(self.check_cancelled, self.deadline)
            if self.goal.metric != "top1":
                ctx.eval_labels = None
            model = self.prepared.original.to(self.prepared.device)
            self.sensitivity_table = sensitivity(model, Sensitivity(compress="quantize"), ctx,
                                                 max_layers=settings.sensitivity_max_layers, max_samples=settings.sensitivity_max_samples)
            self.prepared.original = model.cpu()
            self.sensitivity_seconds = round(time.monotonic() - started, 3)
        return self.sensitivity_table

    def sensitive_layers(self) -> list[str]:
        """The layers to keep in float: those whose int8 drop alone exceeds a quarter of the allowed drop
        (with the weight-error proxy: the worst one), at most half of the layers (at least one)."""
        from worker.methods.sensitivity import most_sensitive

        if self.probing:
            return []
        table = self.sensitivity()
        limit = self.goal.max_accuracy_drop or 0.0
        k = 1 if table.get("proxy") else sum(1 for row in table["layers"] if row["delta"] > limit / 4)
        return most_sensitive(table, min(k, max(1, len(table["layers"]) // 2)))


def applicability(candidate: Candidate, sc: SearchContext) -> tuple[JobSpec | None, str | None]:
    """(the candidate's job spec, None) when it can run here, else (None, why not)."""
    for need in candidate.needs:
        if need == "sensitivity":
            if sc.spec.model.format != "safetensors":
                return None, "needs a per-layer sensitivity table, which needs a safetensors upload"
        elif not sc.has_data(need.split(":")[0]):
            return None, f"needs the '{need.split(':')[0]}' data part"
        elif need.endswith(":labels") and sc.prepared.datasets[need.split(":")[0]].labels is None:
            return None, f"needs 'labels' in the '{need.split(':')[0]}' data part"
    if candidate.when is not None and (reason := candidate.when(sc)):
        return None, reason
    probe = candidate.build(sc) if isinstance(candidate.steps, tuple) else _placeholder(candidate, sc)
    return candidate_spec(sc.spec, probe, candidate.outputs)


def _placeholder(candidate: Candidate, sc: SearchContext) -> list[dict]:
    """Dynamic steps before the data they depend on exists: validate them without the exclusions."""
    sc.probing = True
    try:
        return candidate.build(sc)
    finally:
        sc.probing = False


def candidate_spec(spec: JobSpec, steps: list[dict], outputs: tuple[str, ...] = ()) -> tuple[JobSpec | None, str | None]:
    """The job spec of one candidate, validated exactly like a submitted spec; (None, reason) if invalid here."""
    data = spec.model_dump(mode="json", exclude={"goal", "steps", "outputs"})
    data.update(steps=steps, outputs=list(spec.outputs) or list(outputs))
    if not steps:  # the unchanged model (the last resort): a spec needs steps or a goal
        data["goal"] = spec.goal.model_dump(mode="json") if spec.goal else None
    try:
        return JobSpec.model_validate(data), None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        return None, str(first["msg"]).removeprefix("Value error, ")


def plan(ladder: list[Candidate], sc: SearchContext) -> tuple[list[Candidate], list[dict]]:
    """The candidates to try in cost order, and the ones skipped with the reason."""
    runnable, skipped = [], []
    for candidate in sorted(ladder, key=lambda c: c.cost):
        spec, reason = applicability(candidate, sc)
        if reason is not None:
            skipped.append({"label": candidate.label, "reason": reason})
        else:
            runnable.append(candidate)
    goal = sc.goal
    if goal.max_size_bytes is not None and runnable:
        needed = sc.prepared.model_path.stat().st_size / goal.max_size_bytes
        reachable = [c for c in runnable if c.max_ratio is None or c.max_ratio >= needed]
        if reachable:  # skip the hopeless ones only when some candidate may make it; else try everything
            for c in runnable:
                if c not in reachable:
                    skipped.append({"label": c.label, "reason": f"at most ~{c.max_ratio:g}x smaller; the size goal needs {needed:.1f}x"})
            runnable = reachable
    return runnable, skipped


# -- scoring --------------------------------------------------------------------------------------

def accuracy_of(measured: dict, metric: str) -> tuple[float | None, float | None]:
    """(accuracy, drop) of a measured candidate on the goal's metric; (None, None) without eval data."""
    quality = measured.get("quality")
    if metric == "top1" and quality and quality.get("metric", "top1_accuracy") == "top1_accuracy":
        return quality["top1_accuracy_after"], round(quality["accuracy_drop"], 6)
    fidelity = measured["fidelity"]
    if fidelity.get("top1_agreement") is not None and "eval" in fidelity.get("inputs", ""):
        return fidelity["top1_agreement"], round(1.0 - fidelity["top1_agreement"], 6)
    return None, None


def meets(row: dict, goal: Goal) -> bool:
    if row.get("error"):
        return False
    return not unmet(row, goal)


def unmet(row: dict, goal: Goal) -> list[str]:
    """The goal's constraints this candidate misses."""
    missing = []
    if goal.max_size_bytes is not None and row["file_bytes"] > goal.max_size_bytes:
        missing.append("max_size_bytes")
    if goal.min_speedup is not None and (row["speedup"] is None or row["speedup"] < goal.min_speedup):
        missing.append("min_speedup")
    if goal.max_accuracy_drop is not None and (row["accuracy_drop"] is None or row["accuracy_drop"] > goal.max_accuracy_drop):
        missing.append("max_accuracy_drop")
    return missing


def shortfall(row: dict, goal: Goal) -> tuple:
    """Sort key of the best candidate when none meets the goal: keep accuracy first (a broken model is
    never the best), then the smallest (log-)violation of size and speed, then the smaller file."""
    acc_excess = 0.0
    if goal.max_accuracy_drop is not None:
        drop = row["accuracy_drop"] if row["accuracy_drop"] is not None else 1.0
        acc_excess = max(0.0, drop - goal.max_accuracy_drop)
    other = 0.0
    if goal.max_size_bytes is not None:
        other += max(0.0, math.log(row["file_bytes"] / goal.max_size_bytes))
    if goal.min_speedup is not None:
        other += max(0.0, math.log(goal.min_speedup / row["speedup"])) if row["speedup"] else 10.0
    return (acc_excess > 0, acc_excess, round(other, 9), row["file_bytes"])


def pareto_flags(rows: list[dict]) -> list[bool]:
    """Pareto-optimal rows over (file_bytes min, latency_ms min, accuracy max); rows with an error never are.
    A dimension missing (None) in either of two rows is not compared between them."""
    def dims(r):
        return [(r["file_bytes"], 1), (r["latency_ms"], 1), (r["accuracy"], -1)]

    def dominates(a, b) -> bool:
        better = False
        for (x, sign), (y, _) in zip(dims(a), dims(b)):
            if x is None or y is None:
                continue
            if sign * x > sign * y:
                return False
            if sign * x < sign * y:
                better = True
        return better

    ok = [not r.get("error") for r in rows]
    return [ok[i] and not any(ok[j] and dominates(rows[j], rows[i]) for j in range(len(rows)) if j != i) for i in range(len(rows))]


def _fmt_bytes(n: int) -> str:
    return f"{n:,} bytes"


def diagnose(rows: list[dict], goal: Goal, chosen: dict | None, *, stopped: str, skipped: list[dict],
             sensitivity: dict | None = None, layers: list[dict] | None = None) -> str | None:
    """A plain-words reason why the goal was not met (None when it was)."""
    if chosen is not None and chosen["meets_goal"]:
        return None
    done = [r for r in rows if not r.get("error")]
    parts: list[str] = []
    if not done:
        parts.append("every candidate failed: " + "; ".join(f"{r['label']}: {r['error']}" for r in rows))
    else:
        blocking = [c for c in ("max_size_bytes", "min_speedup", "max_accuracy_drop") if all(c in unmet(r, goal) for r in done)]
        if goal.max_size_bytes is not None:
            small = min(done, key=lambda r: r["file_bytes"])
            if "max_size_bytes" in blocking:
                parts.append(f"max_size_bytes={goal.max_size_bytes:,}: no candidate was that small; the smallest was "
                             f"'{small['label']}' at {_fmt_bytes(small['file_bytes'])} ({small['file_bytes'] / goal.max_size_bytes:.1f}x over)")
                total = sum(row["bytes"] for row in layers or [])
                if total:
                    big = max(layers, key=lambda row: row["bytes"])
                    parts.append(f"layer '{big['name']}' ({big['type']} {'x'.join(map(str, big['shape']))}) holds "
                                 f"{big['bytes'] / total:.0%} of the weight bytes")
        if goal.min_speedup is not None and "min_speedup" in blocking:
            with_speed = [r for r in done if r["speedup"] is not None]
            fast = max(with_speed, key=lambda r: r["speedup"]) if with_speed else None
            parts.append(f"min_speedup={goal.min_speedup:g}: no candidate was that fast"
                         + (f"; the fastest was '{fast['label']}' at {fast['speedup']:.2f}x" if fast else ""))
        if goal.max_accuracy_drop is not None and "max_accuracy_drop" in blocking:
            with_acc = [r for r in done if r["accuracy_drop"] is not None]
            best = min(with_acc, key=lambda r: r["accuracy_drop"]) if with_acc else None
            parts.append(f"max_accuracy_drop={goal.max_accuracy_drop:g}: every candidate lost more {goal.metric}"
                         + (f"; the least was '{best['label']}' with a drop of {best['accuracy_drop'] * 100:.2f} points" if best else ""))
        if not blocking:  # each constraint is reachable alone, but not together
            pairs = ", ".join(f"'{r['label']}' misses {' and '.join(unmet(r, goal))}" for r in done)
            parts.append(f"no candidate met every constraint at once ({pairs})")
        if sensitivity and sensitivity.get("layers") and "max_accuracy_drop" in blocking:
            worst = max(sensitivity["layers"], key=lambda r: r["delta"])
            what = "relative weight error" if sensitivity.get("proxy") else f"{sensitivity['metric']} drop"
            parts.append(f"the most sensitive layer is '{worst['name']}' ({worst['type']}): int8 on it alone costs "
                         f"{worst['delta']:.4f} {what}")
    if stopped == "time budget":
        parts.append(f"the time budget ran out after {len(rows)} candidate(s)")
    if skipped:
        parts.append("not tried: " + "; ".join(f"{s['label']} ({s['reason']})" for s in skipped))
    head = f"goal not met; returning the best candidate found ('{chosen['label']}')" if chosen else "goal not met"
    return head + ". " + ". ".join(parts) + "."


# -- the search -----------------------------------------------------------------------------------

@dataclass
class _Tried:
    row: dict
    measured: dict | None = None
    outputs: list = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    step_log: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    results: dict = field(default_factory=dict)  # what analysis steps among its steps measured


def _reraise_control(exc: BaseException, check_cancelled: Callable[[], None]) -> None:
    """Cancellation, the soft time limit and the memory guard end the job, not just the candidate."""
    from celery.exceptions import SoftTimeLimitExceeded

    from worker.guard import MemoryLimitExceeded

    if isinstance(exc, (SoftTimeLimitExceeded, MemoryLimitExceeded)):
        raise exc
    check_cancelled()


def _try(candidate_label: str, cspec: JobSpec, sc: SearchContext, workdir: Path, progress: Progress,
         span: tuple[float, float], *, warmup: int, runs: int) -> _Tried:
    started = time.monotonic()
    prepared = dataclasses.replace(sc.prepared, spec=cspec)
    ctx = prepared.context(sc.check_cancelled, sc.deadline)
    notes = []
    if ctx.calibration is None and ctx.train is not None and any(s.kind == "static_int8" for s in cspec.steps):
        ctx.calibration = ctx.train
        notes.append("static int8 calibrated on the train data (no calibration part given)")
    row: dict[str, Any] = {"label": candidate_label, "steps": [s.label for s in cspec.steps],
                           "spec_steps": [s.model_dump(mode="json", exclude_defaults=True) | {"method": s.method, "kind": s.kind}
                                          for s in cspec.steps],
                           "file_bytes": 0, "latency_ms": None, "accuracy": None, "accuracy_drop": None, "speedup": None,
                           "meets_goal": False, "pareto": False, "chosen": False, "seconds": 0.0, "error": None}
    try:
        compressed, step_log = compress(prepared, list(cspec.steps), ctx, progress, span=span)
        outputs, checks = write_outputs(prepared, compressed, cspec.resolved_outputs, workdir, ctx)
        sc.check_cancelled()
        measured = measure(prepared, compressed, outputs, ctx, warmup=warmup, runs=runs, check_cancelled=sc.check_cancelled)
        sc.prepared.original = prepared.original
    except Exception as exc:  # noqa: BLE001 - one failing candidate does not fail the search
        _reraise_control(exc, sc.check_cancelled)
        sc.prepared.original = prepared.original.cpu()
        log.info("candidate %s failed", candidate_label, exc_info=True)
        row.update(error=bounded_text(f"{type(exc).__name__}: {getattr(exc, 'detail', None) or exc}", MAX_DETAIL_CHARS),
                   seconds=round(time.monotonic() - started, 3))
        return _Tried(row=row)
    accuracy, drop = accuracy_of(measured, sc.goal.metric)
    latency = measured["after"].get("latency_ms")
    row.update(file_bytes=measured["after"]["file_bytes"], latency_ms=latency["p50"] if latency else None, accuracy=accuracy,
               accuracy_drop=drop, speedup=measured["verdict"].get("speedup"), size_ratio=measured["verdict"]["size_ratio"],
               seconds=round(time.monotonic() - started, 3))
    row["meets_goal"] = meets(row, sc.goal)
    return _Tried(row=row, measured=measured, outputs=outputs, checks=checks, step_log=step_log, notes=notes + ctx.notes,
                  results=ctx.results)


def run_search(prepared: Prepared, workdir: Path, *, progress: Progress, check_cancelled: Callable[[], None], warmup: int, runs: int,
               max_seconds: float | None = None, ladder: list[Candidate] | None = None) -> PipelineResult:
    spec = prepared.spec
    goal = spec.goal
    assert goal is not None
    started = time.monotonic()
    budget = goal.max_seconds or max_seconds or get_settings().search_max_seconds
    sc = SearchContext(prepared=prepared, goal=goal, check_cancelled=check_cancelled, deadline=started + budget,
                       layer_types=_layer_types(prepared.original))
    ladder = list(LADDER if ladder is None else ladder)
    if spec.steps:  # the user's own pipeline is tried first
        ladder.insert(0, Candidate("your steps", -1, tuple(s.model_dump(mode="json", exclude_defaults=True) | {"method": s.method, "kind": s.kind}
                                                             for s in spec.steps)))
    runnable, skipped = plan(ladder, sc)
    progress("searching", None, 0.05, f"goal search: {len(runnable)} candidate(s) to try, cheapest first")
    tried: list[_Tried] = []
    stopped = "ladder exhausted"
    for i, candidate in enumerate(runnable):
        check_cancelled()
        if tried and time.monotonic() >= sc.deadline:
            stopped = "time budget"
            skipped.extend({"label": c.label, "reason": f"time budget of {budget:g} s spent"} for c in runnable[i:])
            break
        lo, hi = 0.05 + 0.9 * i / len(runnable), 0.05 + 0.9 * (i + 1) / len(runnable)
        progress("searching", i, lo, f"candidate {i + 1}/{len(runnable)}: {candidate.label}")
        try:
            steps = candidate.build(sc)
        except NotApplicable as exc:
            skipped.append({"label": candidate.label, "reason": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. the sensitivity analysis failed
            _reraise_control(exc, check_cancelled)
            tried.append(_Tried(row=_failed_row(candidate.label, exc)))
            continue
        cspec, reason = candidate_spec(spec, steps, candidate.outputs)
        if cspec is None:
            skipped.append({"label": candidate.label, "reason": reason})
            continue
        result = _try(candidate.label, cspec, sc, workdir / f"candidate-{i}", progress, (lo, hi), warmup=warmup, runs=runs)
        tried.append(result)
        row = result.row
        progress("searching", i, hi, f"candidate {candidate.label}: " + (f"failed ({row['error']})" if row["error"] else
                 f"{row['file_bytes']:,} bytes, drop {row['accuracy_drop']}, speedup {row['speedup']}"
                 + (" - meets the goal" if row["meets_goal"] else "")))
        if row["meets_goal"]:
            stopped = "goal met"
            skipped.extend({"label": c.label, "reason": f"not needed: '{candidate.label}' met the goal"} for c in runnable[i + 1:])
            break
    if not any(t.measured for t in tried):  # never an empty result: fall back to the unchanged model
        cspec, _ = candidate_spec(spec, [], ())
        if cspec is not None:
            tried.append(_try("original (no compression)", cspec, sc, workdir / "original", progress, (0.9, 0.95), warmup=warmup, runs=runs))
    measured_rows = [t for t in tried if t.measured]
    if not measured_rows:
        raise RuntimeError("goal search: no candidate could be measured: " + "; ".join(f"{t.row['label']}: {t.row['error']}" for t in tried))
    rows = [t.row for t in tried]
    for row, flag in zip(rows, pareto_flags(rows)):
        row["pareto"] = flag
    best = next((t for t in tried if t.row["meets_goal"]), None) or min(measured_rows, key=lambda t: shortfall(t.row, goal))
    best.row["chosen"] = True
    diagnosis = diagnose(rows, goal, best.row, stopped=stopped, skipped=skipped, sensitivity=sc.sensitivity_table,
                         layers=best.measured["before"]["layers"])
    notes = [f"goal search: {len(rows)} candidate(s) tried in {time.monotonic() - started:.1f} s ({stopped}); "
             f"chose '{best.row['label']}'" + ("" if best.row["meets_goal"] else " (goal not met)")] + best.notes
    sensitivity = sc.sensitivity_table or best.results.get("sensitivity")
    metrics = {
        "schema": METRICS_SCHEMA,
        "device": spec.device,
        **best.measured,
        "artifacts": artifact_table(best.outputs, best.checks, best.measured["before"]),
        "steps": best.step_log,
        "notes": notes,
        "goal": {"spec": goal.model_dump(mode="json", exclude_none=True), "met": best.row["meets_goal"], "diagnosis": diagnosis},
        "candidates": rows,
        "search": {"stopped": stopped, "seconds": round(time.monotonic() - started, 3), "budget_seconds": budget,
                   "ladder": [c.label for c in runnable], "skipped": skipped,
                   **({"sensitivity_seconds": sc.sensitivity_seconds} if sensitivity else {})},
        **({"sensitivity": sensitivity} if sensitivity else {}),
    }
    summary = {**summary_of(best.measured), "goal_met": best.row["meets_goal"], "chosen": best.row["label"]}
    return PipelineResult(outputs=best.outputs, metrics=metrics, summary=summary)


def _failed_row(label: str, exc: BaseException) -> dict:
    return {"label": label, "steps": [], "file_bytes": 0, "latency_ms": None, "accuracy": None, "accuracy_drop": None,
            "speedup": None, "meets_goal": False, "pareto": False, "chosen": False, "seconds": 0.0,
            "error": f"{type(exc).__name__}: {getattr(exc, 'detail', None) or exc}"}


def _layer_types(model) -> set[str]:
    from worker.methods.targeting import module_type_name

    return {module_type_name(m) for _, m in model.named_modules()}
