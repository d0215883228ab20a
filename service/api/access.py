"""Who may be served without an API key: the one rule behind both the API and the dashboard.

Auth is off (``MODELPRESS_AUTH=off``, or ``auto`` on a loopback bind) only when every witness of
the bind says loopback:

- ``MODELPRESS_API_HOST``: what ``modelpress up``/``serve`` and compose bind, and set;
- the process's uvicorn command line (``--host H``) and uvicorn's own variable for it
  (``UVICORN_HOST``), which uvicorn reads when ``--host`` is not given;
- per request, the local address the connection arrived on (ASGI ``scope["server"]``): the one
  witness that cannot be misconfigured. uvicorn started from Python (``uvicorn.run(host=...)``),
  gunicorn or an inherited socket bind where the app cannot look; the request shows the real bind.

With auth off a request is served (as tenant ``local``) only if its peer and the address it
arrived on are both loopback; anything else is 401, on every route, ``/ui`` included.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from fastapi import Request

from modelpress_core.config import LOCAL_TENANT, Settings, is_loopback
from modelpress_core.errors import Unauthorized

log = logging.getLogger("modelpress.api")


def command_line_host(argv: Sequence[str] | None = None) -> str | None:
    """The ``--host`` of a ``uvicorn ... --host H`` command line, if this process is one."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == "--host" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return None


def declared_bind_hosts(settings: Settings, argv: Sequence[str] | None = None,
                        environ: Mapping[str, str] | None = None) -> set[str]:
    """Every address this process says it binds: MODELPRESS_API_HOST, uvicorn's --host, UVICORN_HOST."""
    environ = os.environ if environ is None else environ
    hosts = {settings.api_host}
    for witness in (command_line_host(argv), environ.get("UVICORN_HOST")):
        if witness:
            hosts.add(witness)
    return hosts


def auth_required_for(settings: Settings, argv: Sequence[str] | None = None,
                      environ: Mapping[str, str] | None = None) -> bool:
    """Whether requests need a key, from every declared bind; InsecureSettings if auth is off on a non-loopback one."""
    return any(settings.auth_required(host) for host in sorted(declared_bind_hosts(settings, argv, environ)))


def _host(address) -> str | None:
    return address[0] if address else None


def unauthenticated_tenant(request: Request) -> str | None:
    """The tenant of a request served without a key (``local``), or None when this server needs keys.

    Raises Unauthorized when auth is off but the request is not local: its peer, or the address it
    arrived on, is not loopback (e.g. the API is really bound to 0.0.0.0 while MODELPRESS_API_HOST
    says 127.0.0.1)."""
    if request.app.state.auth_required:
        return None
    peer, local = _host(request.scope.get("client")), _host(request.scope.get("server"))
    if local and not is_loopback(local):
        log.error("auth is off for a loopback bind (MODELPRESS_API_HOST=%s), but a request arrived on %s: the API is bound "
                  "to a non-loopback address; refusing it. Bind loopback only, or set MODELPRESS_API_HOST to the real bind "
                  "(keys are then required)", request.app.state.settings.api_host, local)
    if (peer and not is_loopback(peer)) or (local and not is_loopback(local)):
        raise Unauthorized("authentication is off on this server, so it serves loopback clients only")
    return LOCAL_TENANT
