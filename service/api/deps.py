"""Dependencies the routers ask for, as ``Annotated`` aliases.

``TenantDep`` authenticates the request (``Authorization: Bearer mp_<id>_<secret>``) and names its
tenant; ``JobsDep`` is the job repository scoped to that tenant, so every read and write of a job
is scoped without the routes having to remember it.

Every dependency here is ``async def``: none blocks (the key check reads Redis with the asyncio
client), and FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per
dependency per request that cost more CPU than the rest of a status read.
"""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.access import unauthenticated_tenant
from modelpress_core.config import Settings
from modelpress_core.errors import Unauthorized
from modelpress_core.storage.apikeys import verify_async
from modelpress_core.storage.artifacts import ArtifactStore
from modelpress_core.storage.jobs import JobRepository, TenantJobs

bearer = HTTPBearer(
    scheme_name="apiKey",
    bearerFormat="mp_<key id>_<secret>",
    description="An API key from `modelpress keys create --tenant T`, sent as `Authorization: Bearer <key>`. "
    "Not needed when the server runs with auth off (loopback binds only).",
    auto_error=False,
)


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


async def get_tenant(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The request's tenant: the API key's, or ``local`` when auth is off (loopback clients only; see access.py)."""
    local = unauthenticated_tenant(request)
    if local is not None:
        return local
    if credentials is None:
        raise Unauthorized("send an API key: Authorization: Bearer mp_<key id>_<secret> (see `modelpress keys create`)")
    key = await verify_async(request.app.state.aredis, credentials.credentials)
    if key is None:
        raise Unauthorized("the API key is unknown, malformed or revoked", error="invalid_token")
    return key.tenant


TenantDep = Annotated[str, Depends(get_tenant)]


async def get_jobs(request: Request, tenant: TenantDep) -> TenantJobs:
    return TenantJobs(JobRepository(request.app.state.redis), tenant)


async def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
JobsDep = Annotated[TenantJobs, Depends(get_jobs)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
