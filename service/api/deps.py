"""Dependencies the routers ask for, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Request

from service.config import Settings
from service.storage.artifacts import ArtifactStore
from service.storage.jobs import JobRepository


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


def get_jobs(request: Request) -> JobRepository:
    return JobRepository(request.app.state.redis)


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
JobsDep = Annotated[JobRepository, Depends(get_jobs)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
