"""Schemathesis against the committed ``openapi/openapi.json`` on the live app: no request it
generates, valid (positive) or schema-violating (negative), may get a 5xx, and every error it
gets is an RFC 9457 problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_generated_request_gets_a_5xx(operation, mode, stack):
    strategy = operation.as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call(base_url=stack.base_url, timeout=30)
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert response.status_code < 500, f"{where}: {response.text[:500]}"
        if response.status_code >= 400:
            content_type = response.headers.get("content-type") or [""]
            content_type = content_type if isinstance(content_type, str) else content_type[0]
            assert content_type.startswith("application/problem+json"), f"{where} without problem+json: {content_type}"

    try:
        check()
    except Unsatisfiable:
        # Negative mode on an operation whose inputs accept anything (no body, free-form string
        # path parameters): there is no schema-violating request to send.
        assert mode is GenerationMode.NEGATIVE, "positive cases must always be generable"
