"""Request-body size limit, enforced while the body streams in (never after buffering it)."""

from __future__ import annotations

import json

from modelpress_core.errors import UploadTooLarge


class BodySizeLimit:
    """Pure ASGI middleware: 413 problem for a declared or streamed body over ``max_bytes``."""

    def __init__(self, app, max_bytes_getter):
        self.app = app
        self.max_bytes_getter = max_bytes_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.max_bytes_getter()
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                declared_n = -1
            if declared_n > limit:
                return await _send_too_large(scope, send, limit, declared_n)
        seen = 0
        exceeded = False

        async def limited_receive():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def guarded_send(message):
            nonlocal started
            if exceeded:
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _send_too_large(scope, send, limit, None)
                return
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def _send_too_large(scope, send, limit: int, declared: int | None) -> None:
    what = f"the request declares {declared} bytes" if declared is not None else "the request body grew past the limit"
    problem = UploadTooLarge(f"{what}; this server accepts at most {limit} bytes (MODELPRESS_MAX_UPLOAD_BYTES)", limit=limit)
    body = json.dumps(problem.to_problem(instance=scope.get("path"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
