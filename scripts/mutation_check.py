"""Hand-written mutations: does the test suite notice when a promise is broken?

Each mutant is one small, deliberate breakage (file, old text, new text) and the fast tests that
should catch it. The repository's tracked and untracked-but-not-ignored files are copied to a
temporary directory once; each mutant is applied there, its tests run (``pytest -x``), and the file
is restored. A mutant is *killed* when its tests fail, *survived* when they pass. Before anything
runs, every mutant's old text must occur exactly once in its file (else the script exits 2, naming
the mutants that no longer apply), and every named test set must pass on the unmutated copy.

    python -m scripts.mutation_check                    # all mutants, a table on stdout
    python -m scripts.mutation_check --json bench/results/mutation.json
    python -m scripts.mutation_check --only verdict     # mutants whose name contains "verdict"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VERDICT = ["tests/unit/test_verdict.py"]
SCANNER = ["tests/unit/test_picklescan.py"]
PRUNE = ["tests/unit/test_prune_criterion.py"]
TENANT = ["tests/integration/test_tenant_scoping.py"]
TIME_LIMIT = ["tests/integration/test_hard_time_limit.py"]
STATES = ["tests/unit/test_job_state.py"]
CI_GUARD = ["tests/unit/test_ci_skips.py"]
FAST_PATH = ["tests/unit/test_status_fast_path.py"]

# magnitude_prune's eager dispatch: L1 globally (one threshold over all layers) or per layer
EAGER_L1 = """\
    if step.scope == "global":
        entries = _run(model, step, ctx, None, global_method=torch_prune.L1Unstructured)
    else:
        entries = _run(model, step, ctx, lambda module, param, amount, dim: torch_prune.l1_unstructured(module, param, amount))
"""
EAGER_GLOBAL = """\
    if step.scope == "global":
        entries = _run(model, step, ctx, None, global_method=torch_prune.L1Unstructured)
"""


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: list[str]


MUTANTS = [
    # the verdict (worker/pipeline.py)
    Mutant("verdict: faster always true", "worker/pipeline.py",
           "faster=speedup > 1 + NOISE and not simulated)", "faster=True)", VERDICT),
    Mutant("verdict: simulated results may be faster", "worker/pipeline.py",
           "faster=speedup > 1 + NOISE and not simulated)", "faster=speedup > 1 + NOISE)", VERDICT),
    Mutant("verdict: no 5% noise band", "worker/pipeline.py",
           "faster=speedup > 1 + NOISE and not simulated)", "faster=speedup > 1 and not simulated)", VERDICT),
    Mutant("verdict: simulated_reasons always empty", "worker/pipeline.py",
           "                               \"values are converted, not computed fast\")\n    return reasons",
           "                               \"values are converted, not computed fast\")\n    return []", VERDICT),
    Mutant("verdict: 'not faster' warning removed", "worker/pipeline.py",
           "        if speedup <= 1 + NOISE:\n", "        if False:\n", VERDICT),
    Mutant("verdict: amx_fp16 not counted as native fp16", "worker/pipeline.py",
           "(cpu_flags.get(\"avx512_fp16\") or cpu_flags.get(\"amx_fp16\"))", "cpu_flags.get(\"avx512_fp16\")", VERDICT),
    Mutant("verdict: half precision on cuda called simulated", "worker/pipeline.py",
           "step.kind in (\"fp16\", \"bf16\") and measure_on.type != \"cuda\"", "step.kind in (\"fp16\", \"bf16\")", VERDICT),
    # the upload scanner (modelpress_core/picklescan.py, modelpress_core/intake.py)
    Mutant("scanner: STACK_GLOBAL ban removed", "modelpress_core/picklescan.py",
           "{\"STACK_GLOBAL\", \"INST\", \"OBJ\"}", "{\"INST\", \"OBJ\"}", SCANNER),
    Mutant("scanner: INST ban removed", "modelpress_core/picklescan.py",
           "{\"STACK_GLOBAL\", \"INST\", \"OBJ\"}", "{\"STACK_GLOBAL\", \"OBJ\"}", SCANNER),
    Mutant("scanner: GLOBAL allowlist not checked", "modelpress_core/picklescan.py",
           "if opcode.name == \"GLOBAL\" and not ALLOWED_GLOBALS.match(str(arg)):", "if False:", SCANNER),
    Mutant("scanner: only data.pkl scanned", "modelpress_core/intake.py",
           "if name.endswith((\".pkl\", \".debug_pkl\")):", "if name.endswith(\"data.pkl\"):", SCANNER),
    Mutant("scanner: .debug_pkl not scanned", "modelpress_core/intake.py",
           "if name.endswith((\".pkl\", \".debug_pkl\")):", "if name.endswith(\".pkl\"):", SCANNER),
    # pruning (worker/methods/prune.py): the TorchScript path (_prune_scripted)
    Mutant("prune torchscript: largest weights pruned", "worker/methods/prune.py",
           "torch.full_like(flat, -1.0), flat), k, largest=False)", "torch.full_like(flat, -1.0), flat), k, largest=True)", PRUNE),
    Mutant("prune torchscript: 85% of the amount", "worker/methods/prune.py",
           "k = already + round(amount * (flat.numel() - already)) if of == \"remaining\" else max(round(amount * flat.numel()), already)",
           "k = already + round(0.85 * amount * (flat.numel() - already)) if of == \"remaining\" else max(round(0.85 * amount * flat.numel()), already)",
           PRUNE),
    Mutant("prune torchscript: global pruned per layer", "worker/methods/prune.py",
           "groups = [weights] if scope == \"global\" else [[w] for w in weights]", "groups = [[w] for w in weights]", PRUNE),
    # pruning: eager (magnitude_prune, through torch.nn.utils.prune)
    Mutant("prune eager: L1 replaced by random", "worker/methods/prune.py",
           EAGER_L1, EAGER_L1.replace("L1Unstructured", "RandomUnstructured").replace("l1_unstructured", "random_unstructured"), PRUNE),
    Mutant("prune eager: global replaced by per layer", "worker/methods/prune.py",
           EAGER_GLOBAL, EAGER_GLOBAL.replace("if step.scope == \"global\":", "if False:"), PRUNE),
    Mutant("prune eager: per layer replaced by global", "worker/methods/prune.py",
           EAGER_GLOBAL, EAGER_GLOBAL.replace("if step.scope == \"global\":", "if True:"), PRUNE),
    # tenant scoping (modelpress_core/storage/jobs.py: tenant_record, TenantJobs; service/api/status_fast_path.py)
    Mutant("tenant: get not scoped", "modelpress_core/storage/jobs.py",
           "    record = JobRecord.model_validate_json(raw)\n    if record.tenant != tenant:",
           "    record = JobRecord.model_validate_json(raw)\n    if False:", TENANT + FAST_PATH),
    Mutant("tenant: status fast path not scoped", "service/api/status_fast_path.py",
           "record = tenant_record(await state.aredis.get(keys.job(job_id)), job_id, tenant)",
           "record = tenant_record(raw := await state.aredis.get(keys.job(job_id)), job_id, "
           "raw and __import__(\"json\").loads(raw)[\"tenant\"])", FAST_PATH),
    Mutant("tenant: update not scoped", "modelpress_core/storage/jobs.py",
           "            if record.tenant != self.tenant:\n                raise JobNotFound",
           "            if False:\n                raise JobNotFound", TENANT),
    Mutant("tenant: delete not scoped", "modelpress_core/storage/jobs.py",
           "    def delete(self, job_id: str) -> None:\n        self.get(job_id)\n",
           "    def delete(self, job_id: str) -> None:\n", TENANT),
    Mutant("tenant: keep_record_for not scoped", "modelpress_core/storage/jobs.py",
           "    def keep_record_for(self, job_id: str, seconds: int) -> None:\n        self.get(job_id)\n",
           "    def keep_record_for(self, job_id: str, seconds: int) -> None:\n", TENANT),
    Mutant("tenant: list trusts the tenant index", "modelpress_core/storage/jobs.py",
           "if record.tenant == self.tenant and (state is None or record.state == state):",
           "if state is None or record.state == state:", TENANT),
    Mutant("tenant: active count across tenants", "modelpress_core/storage/jobs.py",
           "return int(self.redis.scard(keys.tenant_active(self.tenant)))", "return int(self.redis.scard(keys.live_jobs()))", TENANT),
    # the hard time limit (worker/tasks.py)
    Mutant("time limit: on_timeout handler never runs", "worker/tasks.py",
           "if not soft and self.name == RUN_JOB_TASK:", "if False:", TIME_LIMIT),
    Mutant("time limit: the record is not failed", "worker/tasks.py",
           "        _fail(record, hard_time_limit_problem(limit_s))\n", "        raise NoChange\n", TIME_LIMIT),
    # the job state machine (modelpress_core/job.py)
    Mutant("states: succeeded may run again", "modelpress_core/job.py",
           "JobState.succeeded: frozenset({JobState.expired}),", "JobState.succeeded: frozenset({JobState.expired, JobState.running}),",
           STATES),
    Mutant("states: running can no longer be requeued", "modelpress_core/job.py",
           "JobState.cancelling, JobState.queued}),", "JobState.cancelling}),", STATES),
    # the CI guard (tests/ci_skips.py)
    Mutant("ci guard: skips pass under CI", "tests/ci_skips.py",
           "    if report.skipped and not hasattr(report, \"wasxfail\") and under_ci()",
           "    if False and report.skipped and not hasattr(report, \"wasxfail\") and under_ci()", CI_GUARD),
]


def misplaced(mutants: list[Mutant], root: Path) -> list[str]:
    """One line per mutant whose old text does not occur exactly once in its file (or whose file is gone)."""
    problems = []
    for m in mutants:
        path = root / m.file
        count = path.read_text().count(m.old) if path.is_file() else None
        if count != 1:
            where = f"{m.file} does not exist" if count is None else f"its old text occurs {count} times in {m.file}"
            problems.append(f"mutant {m.name!r}: {where}")
    return problems


def copy_repo(dest: Path) -> None:
    """Tracked files plus untracked files git does not ignore: the working tree as a reviewer sees it."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_tests(copy: Path, tests: list[str]) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("MODELPRESS_TEST_CACHE", str(ROOT / "tests" / ".cache"))
    env.pop("CI", None)  # the CI guard's own tests set it themselves
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                            cwd=copy, env=env, capture_output=True, text=True)
    return result.returncode, time.monotonic() - started, (result.stdout + result.stderr)[-1500:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only mutants whose name contains this text")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    problems = misplaced(MUTANTS, ROOT)  # all of them, whatever --only says: a stale mutant is found on any run
    if problems:
        print("refusing to run: these mutants no longer apply to the code\n" + "\n".join(problems), file=sys.stderr)
        return 2
    mutants = [m for m in MUTANTS if args.only in m.name]
    with tempfile.TemporaryDirectory(prefix="modelpress-mutants-") as tmp:
        copy = Path(tmp)
        copy_repo(copy)
        baseline = {}
        for tests in sorted({tuple(m.tests) for m in mutants}):
            rc, seconds, tail = run_tests(copy, list(tests))
            baseline[" ".join(tests)] = round(seconds, 1)
            if rc != 0:
                print(f"the unmutated tests fail: {' '.join(tests)}\n{tail}", file=sys.stderr)
                return 2
            print(f"baseline passes: {' '.join(tests)} ({seconds:.1f} s)", flush=True)
        results = []
        for m in mutants:
            path = copy / m.file
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            try:
                rc, seconds, tail = run_tests(copy, m.tests)
            finally:
                path.write_text(original)
            outcome = "killed" if rc == 1 else "survived" if rc == 0 else f"error (pytest exit {rc})"
            results.append({"mutant": m.name, "file": m.file, "tests": m.tests, "outcome": outcome, "seconds": round(seconds, 1),
                            **({"output_tail": tail} if outcome != "killed" else {})})
            print(f"{outcome:>9}  {m.name}  ({seconds:.1f} s)", flush=True)
    killed = sum(r["outcome"] == "killed" for r in results)
    summary = {"command": "python -m scripts.mutation_check" + (f" --only {args.only!r}" if args.only else ""),
               "mutants": len(results), "killed": killed,
               "survived": sum(r["outcome"] == "survived" for r in results),
               "errors": sum(r["outcome"].startswith("error") for r in results),
               "score": round(killed / len(results), 3) if results else None,
               "baseline_seconds": baseline, "results": results}
    print(f"{killed}/{len(results)} killed")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
