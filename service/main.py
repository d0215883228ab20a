"""create_app(): wires routers, the problem handler and the lifespan. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager

import redis
import redis.asyncio
from fastapi import FastAPI

from service import __version__
from service.api import artifacts, capabilities, events, health, jobs, prometheus, schemas, ui
from service.api.intake_slots import IntakeSlots, IntakeSlotsCollector
from service.api.limits import BodySizeLimit
from service.api.problems import install_problem_handler
from service.config import LOCAL_TENANT, Settings, get_settings
from service.storage.artifacts import make_store

log = logging.getLogger("modelpress.api")


def command_line_host(argv: list[str] | None = None) -> str | None:
    """The ``--host`` of a ``uvicorn ... --host H`` command line, if this process is one: a second
    witness of the bind, so ``uvicorn --host 0.0.0.0`` without MODELPRESS_API_HOST cannot serve unauthenticated."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == "--host" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # InsecureSettings (auth off on a non-loopback bind) stops the process before it serves anything
    auth_required = any(settings.auth_required(host) for host in {settings.api_host, command_line_host() or settings.api_host})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=30, health_check_interval=30)
        app.state.aredis = redis.asyncio.Redis.from_url(settings.redis_url, health_check_interval=30)
        settings.artifacts_path.mkdir(parents=True, exist_ok=True)
        yield
        app.state.redis.close()
        await app.state.aredis.aclose()

    app = FastAPI(
        title="modelpress",
        version=__version__,
        description="Compress PyTorch models over HTTP: prune, quantize, and pipelines of these, with honest metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth_required = auth_required
    if not auth_required:
        log.warning("authentication is off (MODELPRESS_AUTH=%s, loopback bind %s): every request is tenant %r",
                    settings.auth.value, settings.api_host, LOCAL_TENANT)
    app.state.store = make_store(settings)
    app.state.prom = prometheus.ServiceMetrics(app)
    app.state.intake_slots = IntakeSlots(settings.max_concurrent_inspections, settings.inspection_wait_s)
    app.state.prom.registry.register(IntakeSlotsCollector(app.state.intake_slots))
    install_problem_handler(app)
    app.add_middleware(BodySizeLimit, max_bytes_getter=lambda: settings.max_upload_bytes)
    for router in (jobs.router, events.router, artifacts.router, schemas.router, capabilities.router, health.router, prometheus.router, ui.router):
        app.include_router(router)
    return app
