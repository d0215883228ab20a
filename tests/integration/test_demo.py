"""`modelpress demo` end to end (training, a private stack, a job over HTTP): the server measures accuracy
on the held-out digits (so no note claims there was no labelled data), and the demo's folder is removed
and said so, or kept with --keep and said where."""

from __future__ import annotations

import re
from pathlib import Path

from modelpress.cli import main


def test_demo_measures_accuracy_and_removes_its_files(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^test accuracy +\| [0-9.]+% +\| [0-9.]+% +\| [+-][0-9.]+ points", out, re.M), out
    assert re.search(r"^verdict: .*top-1 accuracy [0-9.]+% -> [0-9.]+% \(drop -?[0-9.]+ points, 95% CI", out, re.M), out
    assert "no labelled data" not in out
    (folder,) = re.findall(r"removed the demo's files \((.+?)\)", out)
    assert not Path(folder).exists()
