"""The one problem handler: every error leaves as RFC 9457 application/problem+json."""

from __future__ import annotations

import logging

import redis
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelpress_core.errors import InvalidRequest, ModelpressError, NotFound, Unavailable, bounded_problem

log = logging.getLogger("modelpress.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"

_HTTP_SLUGS = {404: ("not-found", "Not found"), 405: ("method-not-allowed", "Method not allowed")}


def as_modelpress_error(exc: Exception) -> ModelpressError:
    if isinstance(exc, ModelpressError):
        return exc
    if isinstance(exc, RequestValidationError):
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": "request", "msg": "invalid"}
        error = InvalidRequest(f"{first['loc']}: {first['msg']}", errors=errors)
        return error
    if isinstance(exc, StarletteHTTPException):
        slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        error = NotFound(str(exc.detail), slug=slug, title=title)
        error.status = exc.status_code
        return error
    if isinstance(exc, redis.RedisError):  # e.g. a restarting redis-server: the client should retry, not see a 500
        log.warning("redis unavailable: %s", exc)
        return Unavailable("the job store (Redis) is unavailable; retry shortly")
    log.exception("unhandled error", exc_info=exc)
    return ModelpressError("an unexpected error occurred; it has been logged")


def problem_response(request: Request, exc: Exception) -> JSONResponse:
    error = as_modelpress_error(exc)
    headers = getattr(exc, "headers", None) or {}
    return JSONResponse(
        bounded_problem(error.to_problem(instance=request.url.path)),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def install_problem_handler(app) -> None:
    for exc_type in (ModelpressError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_type, problem_response)
