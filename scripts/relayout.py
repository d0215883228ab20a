"""One-off re-layout (issue 14): move the torch-free shared code into ``modelpress_core`` and the
torch-side shared code (the architecture zoo, artifact manifests and loaders) into ``modelpress_torch``,
then rewrite every import. Idempotent: files already moved are skipped, rewrites are re-applied.

    python scripts/relayout.py            # from the repository root
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# old path -> new path (files or whole directories), applied with `git mv`
MOVES = [
    ("service/domain/steps", "modelpress_core/steps"),
    ("service/storage", "modelpress_core/storage"),
    ("modelpress/packed.py", "modelpress_core/packed.py"),
    ("worker/architectures", "modelpress_torch/architectures"),
    ("modelpress/artifacts.py", "modelpress_torch/artifacts.py"),
]
# every module of service/domain/ goes to the core's top level
DOMAIN_DIR = "service/domain"
# the torch-free, FastAPI-free modules at service/'s top level that both sides use
CORE_MODULES_FROM_SERVICE = (
    "config", "intake", "picklescan", "zipsafety", "datafiles", "inspection", "lifecycle", "queue",
    "torchscript_ops", "torchscript_scan", "jsonscan", "budget",
)

# dotted module prefixes, longest first; applied to every import and dotted string
MODULES = [
    ("service.domain.steps", "modelpress_core.steps"),
    ("service.domain", "modelpress_core"),
    ("service.storage", "modelpress_core.storage"),
    ("worker.architectures", "modelpress_torch.architectures"),
] + [(f"service.{m}", f"modelpress_core.{m}") for m in CORE_MODULES_FROM_SERVICE]
# the SDK's public modules stay importable for users (``modelpress.artifacts``, ``modelpress.packed`` are
# facades); only the internal packages are rewritten to the new homes
INTERNAL_MODULES = [("modelpress.artifacts", "modelpress_torch.artifacts"), ("modelpress.packed", "modelpress_core.packed")]
INTERNAL_DIRS = ("worker/", "service/", "modelpress_core/", "modelpress_torch/")

TEXT_SUFFIXES = {".py", ".md", ".toml", ".ini", ".cfg", ".yml", ".yaml", ".txt", ""}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def all_moves() -> list[tuple[str, str]]:
    moves = list(MOVES)
    domain = ROOT / DOMAIN_DIR
    if domain.is_dir():
        moves += [(f"{DOMAIN_DIR}/{f.name}", f"modelpress_core/{f.name}") for f in sorted(domain.glob("*.py")) if f.name != "__init__.py"]
    moves += [(f"service/{m}.py", f"modelpress_core/{m}.py") for m in CORE_MODULES_FROM_SERVICE]
    return moves


def move() -> None:
    for old, new in all_moves():
        src, dst = ROOT / old, ROOT / new
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir() and dst.is_dir():  # a branch merged later added files under the old folder: move those
            for f in sorted(src.rglob("*.py")):
                target = dst / f.relative_to(src)
                if target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                git("mv", str(f.relative_to(ROOT)), str(target.relative_to(ROOT)))
        elif src.is_file() and dst.exists():
            continue  # moved already; what stands at the old path now is the SDK's facade
        else:
            git("mv", old, new)
    leftover = ROOT / DOMAIN_DIR / "__init__.py"
    if leftover.exists():
        git("rm", "-q", f"{DOMAIN_DIR}/__init__.py")
    for pkg in ("modelpress_core", "modelpress_torch"):
        init = ROOT / pkg / "__init__.py"
        if not init.exists():
            init.write_text("")
            git("add", str(init.relative_to(ROOT)))


def rewrite_text(text: str, internal: bool = False) -> str:
    for old, new in MODULES + (INTERNAL_MODULES if internal else []):
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?=[\s.:,;)'\"`\]]|$)", new, text, flags=re.M)
    names = "|".join(CORE_MODULES_FROM_SERVICE)
    # `from service import intake` -> `from modelpress_core import intake`
    text = re.sub(rf"^(\s*)from service import ({names})\b", r"\1from modelpress_core import \2", text, flags=re.M)
    text = re.sub(r"^(\s*)from service\.domain import ", r"\1from modelpress_core import ", text, flags=re.M)
    if internal:
        text = re.sub(r"^(\s*)from modelpress import packed\b", r"\1from modelpress_core import packed", text, flags=re.M)
    # paths in prose and config (service/domain/errors.py -> modelpress_core/errors.py)
    for old, new in all_moves():
        if old.startswith("modelpress/") and not internal:
            continue
        text = re.sub(rf"(?<![\w/]){re.escape(old)}(?![\w])", new, text)
    return text


def rewrite() -> list[str]:
    changed = []
    for rel in git("ls-files").splitlines() + git("ls-files", "--others", "--exclude-standard").splitlines():
        path = ROOT / rel
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES or rel.startswith(("openapi/", "bench/results/")):
            continue
        if rel == "scripts/relayout.py":
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_text(text, internal=rel.startswith(INTERNAL_DIRS))
        if new != text:
            path.write_text(new)
            changed.append(rel)
    return changed


if __name__ == "__main__":
    move()
    for rel in rewrite():
        print("rewrote", rel)
