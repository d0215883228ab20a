"""Answer: does an uploaded state_dict (names and shapes only) fit an architecture + config?"""

from __future__ import annotations

from typing import Any, Callable

from worker.applicability import step_problems
from modelpress_torch.architectures import InvalidArchitectureConfig, UnknownArchitecture, get_architecture, list_architectures
from modelpress_torch.architectures.matching import _default_shapes as default_shapes
from modelpress_torch.architectures.matching import compare_shapes, expected_shapes, suggest_architectures


Publish = Callable[[str, dict, dict], None]  # (architecture, config, expected shapes): see modelpress_core.inspection


def answer(request: dict[str, Any], publish: Publish = lambda name, config, shapes: None) -> dict[str, Any]:
    name, config, shapes = request["architecture"], request.get("config") or {}, request["shapes"]
    try:
        arch = get_architecture(name)
        expected = expected_shapes(name, config)
        publish(name, config, expected)  # the next upload of this (architecture, config) needs no round trip
    except UnknownArchitecture:
        known = ", ".join(a.name for a in list_architectures())
        return {"ok": False, "error_type": "config", "error": f"unknown architecture {name!r}; known: {known}"}
    except InvalidArchitectureConfig as exc:
        return {"ok": False, "error_type": "config", "error": str(exc), "errors": _jsonable(exc.errors)}
    if shapes is None:  # only the name and config were asked about (e.g. a distillation student)
        return {"ok": True}
    match = compare_shapes(expected, shapes)
    steps = request.get("steps")
    if match.ok and steps:
        problems = step_problems(lambda: arch.build(config), steps)
        if problems:
            return {"ok": False, "error_type": "steps", "error": "; ".join(f"{p['loc']}: {p['msg']}" for p in problems),
                    "errors": problems}
    report = {
        "ok": match.ok,
        "missing": match.missing[:10],
        "unexpected": match.unexpected[:10],
        "mismatched": [{"key": m.key, "expected": m.expected, "got": m.got} for m in match.mismatched[:10]],
        "counts": {"missing": len(match.missing), "unexpected": len(match.unexpected), "mismatched": len(match.mismatched)},
    }
    if match.ok:
        return report
    report["error"] = _summary(arch.name, report)
    report["suggestions"] = [s for s in suggest_architectures(shapes) if s != name][:5]
    return report


def warm_up(publish: Publish = lambda name, config, shapes: None) -> None:
    """Build every zoo architecture's default shapes once (meta device), so the first answer is fast; publish each."""
    suggest_architectures({})
    for arch in list_architectures():
        shapes = default_shapes(arch)  # built (and cached) by suggest_architectures; None: needs a config
        if shapes is not None:
            publish(arch.name, {}, shapes)


def _summary(name: str, report: dict[str, Any]) -> str:
    parts = []
    counts = report["counts"]
    if report["missing"]:
        parts.append(f"{counts['missing']} missing (e.g. {', '.join(report['missing'][:3])})")
    if report["unexpected"]:
        parts.append(f"{counts['unexpected']} unexpected (e.g. {', '.join(report['unexpected'][:3])})")
    if report["mismatched"]:
        m = report["mismatched"][0]
        parts.append(f"{counts['mismatched']} with wrong shapes (e.g. {m['key']}: expected {m['expected']}, got {m['got']})")
    return f"the state_dict does not fit architecture {name!r} with this config: " + "; ".join(parts)


def _jsonable(errors: list[dict]) -> list[dict]:
    return [{"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in errors]
