"""`pip install modelpress` is the SDK and CLI only: no torch, FastAPI, Celery or Redis client, and
neither the API (`service`) nor the workers (`worker`) are imported by it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "fastapi", "starlette", "celery", "redis", "onnx", "onnxruntime", "torchao", "transformers", "sklearn")


def test_the_base_install_pulls_none_of_the_server_or_worker_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower() for dep in project["dependencies"]}
    assert names.isdisjoint({"torch", "fastapi", "uvicorn", "celery", "redis", "onnxruntime", "torchao", "scikit-learn"}), names
    assert {"server", "worker"} <= set(project["optional-dependencies"])
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["worker"])
    assert any(d.startswith("fastapi") for d in project["optional-dependencies"]["server"])


def test_the_sdk_and_cli_import_and_run_with_the_heavy_packages_absent(tmp_path):
    # A finder that makes every heavy package (and the server side) unimportable, as in a bare `pip install modelpress`.
    code = textwrap.dedent(f"""
        import sys
        BLOCKED = {HEAVY + ("service", "worker", "modelpress_torch")!r}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
        sys.meta_path.insert(0, Block())
        import modelpress, modelpress.cli, modelpress.client, modelpress.packed
        from modelpress import ModelpressClient
        ModelpressClient("http://127.0.0.1:9")  # builds without touching the network
        try:
            modelpress.cli.main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok", modelpress.__version__)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("ok ")
