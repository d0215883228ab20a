import subprocess
import sys
from pathlib import Path

from scripts.export_openapi import OUT, render


def test_committed_openapi_matches_the_app():
    assert OUT.read_text() == render(), "openapi/openapi.json drifted: run `python scripts/export_openapi.py`"


def test_the_api_process_never_imports_torch():
    code = "import sys, service.main; service.main.create_app(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
