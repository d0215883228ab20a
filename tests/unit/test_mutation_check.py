"""The mutation check stays true to the code: every mutant still applies to exactly one place.

No mutation is run here (that is ``python -m scripts.mutation_check``); this only reads files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import mutation_check
from scripts.mutation_check import MUTANTS, ROOT, Mutant, misplaced


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutants_old_text_occurs_exactly_once_in_its_file(mutant):
    assert (ROOT / mutant.file).read_text().count(mutant.old) == 1
    assert mutant.new != mutant.old
    assert all((ROOT / t).is_file() for t in mutant.tests)


def test_mutant_names_are_unique():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))


def test_misplaced_names_a_mutant_that_no_longer_applies(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\nx = 1\ny = 2\n")
    mutants = [Mutant("fine", "a.py", "y = 2", "y = 3", []), Mutant("twice", "a.py", "x = 1", "x = 0", []),
               Mutant("gone text", "a.py", "z = 3", "z = 4", []), Mutant("gone file", "b.py", "y", "z", [])]
    assert misplaced(mutants, tmp_path) == [
        "mutant 'twice': its old text occurs 2 times in a.py",
        "mutant 'gone text': its old text occurs 0 times in a.py",
        "mutant 'gone file': b.py does not exist",
    ]


def test_the_script_refuses_to_run_with_a_stale_mutant(monkeypatch, capsys):
    stale = Mutant("stale one", "worker/pipeline.py", "text that is not in the file", "x", [])
    monkeypatch.setattr(mutation_check, "MUTANTS", [*MUTANTS, stale])
    monkeypatch.setattr(mutation_check, "copy_repo", lambda dest: pytest.fail("copied the repo despite a stale mutant"))
    assert mutation_check.main(["--only", "verdict"]) == 2  # --only does not hide it
    assert "'stale one': its old text occurs 0 times in worker/pipeline.py" in capsys.readouterr().err
