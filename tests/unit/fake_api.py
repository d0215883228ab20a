"""A small real HTTP server (http.server on a loopback port, in a thread) answering a few API routes
with canned JSON, for CLI tests that run the command as a user would (in process or as a subprocess)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JOBS = [{"id": f"j_{i:04d}", "state": "succeeded", "created_at": "2026-11-30T10:00:00Z"} for i in range(2000)]


def serve(routes: dict[str, object]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0]
            body, status = (json.dumps(routes[path]).encode(), 200) if path in routes else (b'{"title": "Not Found"}', 404)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":  # python -m tests.unit.fake_api ARGS...: `modelpress ARGS --url <this server>`
    from modelpress.cli import main

    server = serve({"/jobs": {"items": JOBS, "next_cursor": None}})
    sys.exit(main([*sys.argv[1:], "--url", f"http://127.0.0.1:{server.server_port}"]))
