"""Which jobs run user code, and what a confined child may read.

``UNTRUSTED_FORMATS`` is the one table deciding it: a format listed here carries code or a graph
that executes (TorchScript today; ONNX, Hugging Face and pt2 join when they become inputs). Every
other format is data loaded into a registered builder (safetensors + zoo/plugin architecture),
which runs in the worker process as before.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

# format -> why it runs in the sandbox
UNTRUSTED_FORMATS: dict[str, str] = {
    "torchscript": "torch.jit.load runs the archive's own code (forward and every method it calls)",
}

# the packages the child imports from the project's own source tree (a listing of their parent is allowed too)
PROJECT_PACKAGES = ("modelpress_core", "modelpress_torch", "worker")  # the code a sandbox child runs: never service/ or the SDK

# system files torch and the C library read; each exists or is skipped
SYSTEM_READ = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share/zoneinfo", "/etc/ld.so.cache",
               "/etc/localtime", "/dev/urandom", "/dev/random", "/sys/devices/system/cpu", "/proc/cpuinfo",
               "/proc/self", "/proc/sys/kernel/osrelease")
SYSTEM_READ_WRITE_FILES = ("/dev/null", "/dev/zero")


def runs_user_code(model_format: str) -> bool:
    return model_format in UNTRUSTED_FORMATS


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def package_dirs() -> list[str]:
    root = project_root()
    return [str(root / name) for name in PROJECT_PACKAGES if (root / name).is_dir()]


def python_roots() -> list[str]:
    """The interpreter, its standard library and its site-packages (the venv's and the base install's)."""
    roots = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    roots.add(str(Path(sys.executable).resolve().parent.parent))  # the real interpreter behind a venv's symlink
    return sorted(_minimal({os.path.realpath(r) for r in roots if r}))


def read_roots() -> list[str]:
    """Everything a confined child may read besides its own inputs (directories cover what is beneath them)."""
    return sorted(_minimal({*python_roots(), *(os.path.realpath(p) for p in package_dirs())})) + [
        p for p in SYSTEM_READ if os.path.exists(p)]


def listing_roots() -> list[str]:
    """Directories the child may list (names only): the project root, for the import system to find its packages."""
    return [str(project_root())]


def exposed(forbidden: dict[str, Path]) -> list[str]:
    """Reasons the read roots would expose one of ``forbidden`` (name -> path): a root that contains it
    or lies inside it. Empty when none does."""
    reasons = []
    roots = [r for r in read_roots() if not r.startswith(("/proc", "/dev", "/sys"))] + listing_roots()
    for name, path in forbidden.items():
        target = os.path.realpath(path)
        for root in roots:
            if _inside(target, root) or _inside(root, target):
                reasons.append(f"the sandbox's read root {root} overlaps the {name} {target}")
    return reasons


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _minimal(paths: set[str]) -> set[str]:
    return {p for p in paths if not any(q != p and _inside(p, q) for q in paths)}
