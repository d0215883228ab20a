"""The hot path of ``GET /jobs/{id}``: a successful status read served below FastAPI's routing.

Pollers read job status several times a second each; FastAPI's routing, dependency solving and
middleware layers cost more CPU per request than reading and serializing the record
(docs/benchmarks.md, "API status read"). This pure ASGI middleware answers a ``GET /jobs/{id}``
itself when everything goes right: the tenant is known (auth off on loopback, or a valid key), the
record exists and is the tenant's. Anything else (no or bad key, another tenant's or an unknown
job, a queued job, any other path or method) falls through to the ordinary route in ``jobs.py``,
which answers it exactly as before (problem+json, WWW-Authenticate). Redis failing after the
client's retries is answered here with the route's 503 problem (the same handler), so a client
does not wait out the retry budget twice.
Both paths build the body with the same functions (``tenant_record``, ``job_view_json``).
"""

from __future__ import annotations

import re

import redis
from fastapi.security.utils import get_authorization_scheme_param
from starlette._utils import get_route_path
from starlette.requests import Request

from modelpress_core.errors import ModelpressError
from modelpress_core.job import JobState
from modelpress_core.storage import keys
from modelpress_core.storage.apikeys import verify_async
from modelpress_core.storage.jobs import tenant_record
from service.api.access import unauthenticated_tenant
from service.api.jobs import base_url
from service.api.problems import problem_response
from service.api.views import job_view_json

STATUS_PATH = re.compile(r"^/jobs/([^/]+)$")
JSON_HEADERS = [(b"content-type", b"application/json")]


class StatusReadFastPath:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and (match := STATUS_PATH.match(get_route_path(scope))):
            try:
                body = await self._status(scope, match.group(1))
            except redis.RedisError as exc:  # already retried for MODELPRESS_REDIS_RETRY_S: the route's 503, not a second wait
                return await problem_response(Request(scope), exc)(scope, receive, send)
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _status(self, scope, job_id: str) -> bytes | None:
        """The status body if this request is the happy case, else None (the route answers it)."""
        request = Request(scope)
        state = request.app.state
        try:
            tenant = unauthenticated_tenant(request)
            if tenant is None:
                scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
                if scheme.lower() != "bearer" or not token or (key := await verify_async(state.aredis, token)) is None:
                    return None
                tenant = key.tenant
            record = tenant_record(await state.aredis.get(keys.job(job_id)), job_id, tenant)
        except ModelpressError:
            return None
        if record.state == JobState.queued:
            return None  # the route says why it waits (a read of the workers' heartbeats)
        return job_view_json(record, base_url(request, state.settings))
