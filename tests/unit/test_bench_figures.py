"""Benchmark figures in the docs can be traced to committed results.

For the pages that quote benchmark figures:
- every results file they cite (``bench/results/...``) exists;
- every bench command they name (``python bench/x.py --flag ...``, ``python -m bench.x ...``) is a script in
  ``bench/`` that defines each named flag, and is the ``command`` recorded in a committed results file;
- every figure in a table (a number with a decimal point or a thousands separator) of a page that quotes
  results appears in a results file cited by the table or the text above it (the JSON's numbers, rounded as
  shown, or the generated ``.md`` verbatim).
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
# pages whose tables quote benchmark figures (checked number by number)
FIGURE_PAGES = ["docs/benchmarks.md", "bench/README.md", "docs/packed-format.md", "docs/limits.md"]
# pages whose other tables hold configured values, not measurements: only tables that cite a results file are checked
MIXED_PAGES = {"docs/limits.md"}
# pages checked for the files and commands they cite
CITING_PAGES = sorted({*FIGURE_PAGES, "README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))})

RESULT_REF = re.compile(r"(?:bench/)?results/([\w.-]+(?:\{[\w,]+\})?[\w.]*)")
BARE_RESULT_REF = re.compile(r"`([\w-]+\.(?:json|md))`")  # on a figure page, `speed.json` names a results file
COMMAND = re.compile(r"python (?:bench/(\w+)\.py|-m bench\.(\w+))((?: --?[\w-]+(?: (?!--)[^\s`|()#]+)*)*)")
# a figure: a decimal, a number with thousands separators, or a whole number of seconds or a whole ratio ("452 s", "40x")
NUMBER = re.compile(r"(?<![\w.≥≤<>])[-−+]?(?:\d{1,3}(?:,\d{3})+(?![\d.])|\d+\.\d+|\d+(?= s\b|x\b))")
TARGET = re.compile(r"(?:[≥≤<>]|target|max\w*)\s*[-−+]?\d[\d.,]*", re.IGNORECASE)


def expand(name: str) -> list[str]:
    """``load.{json,md}`` -> [``load.json``, ``load.md``]."""
    m = re.match(r"(.*)\{([\w,]+)\}(.*)", name)
    return [m.group(1) + part + m.group(3) for part in m.group(2).split(",")] if m else [name]


def cited_results(text: str, bare: bool = True) -> set[str]:
    """Results files named in ``text``; with ``bare``, backticked file names count too."""
    raws = [m.group(1) for m in RESULT_REF.finditer(text)] + (BARE_RESULT_REF.findall(text) if bare else [])
    return {n for raw in raws for n in expand(raw.rstrip(".")) if n.endswith((".json", ".md"))}


def with_siblings(names: set[str]) -> set[str]:
    """A results ``.md`` is generated with its ``.json`` (and the other way round): citing one cites both."""
    return {n for name in names for n in (name, str(Path(name).with_suffix(".json")), str(Path(name).with_suffix(".md")))
            if (RESULTS / n).is_file()}


def page(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


@cache
def recorded_commands() -> set[str]:
    out = set()
    for f in RESULTS.glob("*.json"):
        result = json.loads(f.read_text())
        meta = result.get("meta") if isinstance(result, dict) else None
        command = result.get("command") or (meta.get("command") if isinstance(meta, dict) else None)
        if isinstance(command, str):
            out.add(normalize(command))
    return out


def normalize(command: str) -> str:
    return " ".join(re.sub(r"^\S*python[\d.]*\s+", "python ", command.strip()).split())


@cache
def script_flags(script: str) -> set[str]:
    """Option strings of every ``add_argument`` call in ``bench/<script>.py``."""
    tree = ast.parse((ROOT / "bench" / f"{script}.py").read_text())
    flags = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags.update(a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-"))
    return flags


def commands(text: str):
    for m in COMMAND.finditer(text):
        yield m.group(1) or m.group(2), m.group(0).strip()


@pytest.mark.parametrize("path", CITING_PAGES)
def test_every_cited_result_file_exists(path):
    missing = sorted(n for n in cited_results(page(path), bare=path in FIGURE_PAGES) if not (RESULTS / n).is_file())
    assert not missing, f"{path} cites results that are not committed: {missing}"


@pytest.mark.parametrize("path", CITING_PAGES)
def test_every_named_bench_command_exists_with_its_flags_and_was_run(path):
    for script, command in commands(page(path)):
        assert (ROOT / "bench" / f"{script}.py").is_file(), f"{path}: `{command}` names no script"
        unknown = {f for f in re.findall(r"(?<!\S)(--?[A-Za-z][\w-]*)", command) if f != "-m"} - script_flags(script)
        assert not unknown, f"{path}: `{command}` uses flags bench/{script}.py does not define: {sorted(unknown)}"
        assert normalize(command) in recorded_commands(), (
            f"{path}: `{command}` is not the command of any committed results file in bench/results/")


def tables(text: str):
    """(context, table) pairs: each markdown table with the text since the heading above it."""
    context, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append(line)
            continue
        if rows:
            yield "\n".join(context), "\n".join(rows)
            context, rows = [], []
        if line.startswith("#"):
            context = []
        context.append(line)


def json_numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in json_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in json_numbers(v)]
    if isinstance(value, str) and len(value) <= 40:  # a short figure written as text ("7.5%", "8 conv / 5 fc")
        return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", value)]
    return []


@cache
def result_figures(name: str) -> tuple[tuple[float, ...], str]:
    path = RESULTS / name
    if name.endswith(".json"):
        return tuple(json_numbers(json.loads(path.read_text()))), ""
    return (), path.read_text(encoding="utf-8")


UNITS = {"MB": 1e6, "KB": 1e3, "MiB": 2**20, "KiB": 2**10}


def quoted(number: str, sources: set[str], unit: str = "") -> bool:
    """Whether ``number`` (as written in a doc, with its unit) is in one of the results files, rounded as shown:
    the JSON's numbers (as they are, a fraction as a percentage, bytes in MB/KB) or the ``.md`` verbatim."""
    plain = number.replace(",", "").replace("−", "-").lstrip("+-")
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    value, tolerance = float(plain) * UNITS.get(unit, 1), 0.5 * 10**-decimals * UNITS.get(unit, 1) + 1e-9
    for name in sources:
        numbers, md = result_figures(name)
        if md and re.search(rf"(?<![\d.,]){re.escape(number.lstrip('+-−'))}(?![\d,]|\.\d)", md):
            return True
        if any(abs(abs(v) - value) <= tolerance or (abs(v) <= 1 and abs(abs(100 * v) - value) <= tolerance) for v in numbers):
            return True
    return False


def unquoted_figures(path: str) -> list[str]:
    problems = []
    for context, table in tables(page(path)):
        sources = with_siblings(cited_results(context + table))
        if not sources and path in MIXED_PAGES:
            continue
        for row in table.splitlines():
            cleaned = TARGET.sub(" ", row)
            figures = [(m.group(0), re.match(r"\s?([KM]i?B)\b", cleaned[m.end():])) for m in NUMBER.finditer(cleaned)]
            if figures and not sources:
                problems.append(f"no results file cited for: {row[:80]}")
                continue
            problems += [f"{n} (row: {row[:80]})" for n, unit in figures if not quoted(n, sources, unit.group(1) if unit else "")]
    return problems


@pytest.mark.parametrize("path", FIGURE_PAGES)
def test_every_table_figure_is_in_a_cited_result_file(path):
    problems = unquoted_figures(path)
    assert not problems, f"{path}: figures not found in the results files it cites:\n" + "\n".join(problems)


def test_the_checks_catch_an_invented_figure_and_a_command_nobody_ran():
    """The checks above can fail: a figure in no results file and a command no results file records are caught."""
    text = "## x (`packed.json`)\n\n| model | ratio |\n|---|---|\n| LeNet-5 | 123.45x |\n| LeNet-300-100 | 1,066,896 B |\n"
    ((context, table),) = tables(text)
    sources = cited_results(context + table)
    assert sources == {"packed.json"}
    assert NUMBER.findall(table) == ["123.45", "1,066,896"]
    assert not quoted("123.45", sources)
    assert quoted("1,066,896", sources)
    # a run time the JSON does not record (the quant baselines took 357.3 s, not 452 s)
    assert NUMBER.findall("| 357.3 s, 452 s, 40x |") == ["357.3", "452", "40"]
    assert quoted("357.3", {"quant_baselines.json"}) and not quoted("452", {"quant_baselines.json", "quant_baselines.md"})
    assert [c for _, c in commands("`python bench/packed.py --out /tmp/x.json`")] == ["python bench/packed.py --out /tmp/x.json"]
    assert normalize("python bench/packed.py --out /tmp/somewhere.json") not in recorded_commands()
