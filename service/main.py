"""create_app(): wires routers, the problem handler and the lifespan. Nothing else lives here."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelpress_core import __version__
from service.api import artifacts, capabilities, events, health, jobs, prometheus, schemas, ui
from service.api.access import auth_required_for
from service.api.intake_slots import IntakeSlots, IntakeSlotsCollector
from service.api.limits import BodySizeLimit
from service.api.problems import install_problem_handler
from service.api.status_fast_path import StatusReadFastPath
from modelpress_core.config import LOCAL_TENANT, Settings, get_settings
from modelpress_core.storage.artifacts import make_store
from modelpress_core.storage.private import private_dir, tighten
from modelpress_core.storage.connection import async_redis_client, redis_client

log = logging.getLogger("modelpress.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # InsecureSettings (auth off on a non-loopback bind) stops the process before it serves anything
    auth_required = auth_required_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.redis = redis_client(settings.redis_url, retry_s=settings.redis_retry_s, health_check_interval=30)
        app.state.aredis = async_redis_client(settings.redis_url, retry_s=settings.redis_retry_s, health_check_interval=30)
        tighten(private_dir(settings.artifacts_path))  # 0700 directories, 0600 files, also those from before modes were private
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
    app.add_middleware(StatusReadFastPath)  # a successful GET /jobs/{id} below the routing; the route answers the rest
    for router in (jobs.router, events.router, artifacts.router, schemas.router, capabilities.router, health.router, prometheus.router, ui.router):
        app.include_router(router)
    return app
