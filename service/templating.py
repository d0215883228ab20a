"""The one Jinja2 environment for the HTML the API serves (the dashboard and the job report).

Autoescape is on for every template: a value from a job record or metrics.json is text, never
markup. The only markup passed in is ``markupsafe.Markup`` built by code that escapes its own
inputs (the SVG chart helpers in ``service.report``, which build shapes from numbers and escape every label).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
