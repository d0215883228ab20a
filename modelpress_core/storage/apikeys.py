"""API keys: ``mp_<key id>_<secret>``, stored hashed, each bound to a tenant.

Redis holds, per key, its id, tenant, name, creation time and the sha256 of its secret; never the
key. The secret is 32 random bytes (256 bits), so a plain sha256 is enough (a slow password hash
protects low-entropy secrets, which these are not); the comparison is constant-time. The key id is
public (``modelpress keys list`` shows it, ``keys revoke`` takes it); it only picks the record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

import redis

from modelpress_core.errors import ApiKeyNotFound, InvalidSpec
from modelpress_core.job import utcnow
from modelpress_core.storage import keys

KEY_PREFIX = "mp_"
KEY_RE = re.compile(r"^mp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass
class ApiKey:
    key_id: str
    tenant: str
    name: str
    created_at: str
    secret_sha256: str
    revoked_at: str | None = None

    def public(self) -> dict:
        """What may be shown: everything but the hash."""
        return {k: v for k, v in asdict(self).items() if k != "secret_sha256"}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(key id, secret, the full key ``mp_<id>_<secret>``)."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return key_id, secret, f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = KEY_RE.match(token)
    return (match.group(1), match.group(2)) if match else None


def check_tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise InvalidSpec(f"tenant {tenant!r}: use 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
    return tenant


class ApiKeyRepository:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def create(self, tenant: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for ``tenant``; returns its record and the key (shown once, never stored)."""
        check_tenant(tenant)
        key_id, secret, token = new_key()
        now: datetime = utcnow()
        record = ApiKey(key_id=key_id, tenant=tenant, name=name, created_at=now.isoformat(), secret_sha256=hash_secret(secret))
        pipe = self.redis.pipeline()
        pipe.set(keys.api_key(key_id), json.dumps(asdict(record)), nx=True)
        pipe.zadd(keys.api_keys_index(), {key_id: now.timestamp()})
        if not pipe.execute()[0]:
            raise RuntimeError("API key id collision; try again")
        return record, token

    def get(self, key_id: str) -> ApiKey:
        raw = self.redis.get(keys.api_key(key_id))
        if raw is None:
            raise ApiKeyNotFound(f"no API key with id {key_id!r}")
        return ApiKey(**json.loads(raw))

    def list(self) -> list[ApiKey]:
        ids = [i.decode() if isinstance(i, bytes) else i for i in self.redis.zrange(keys.api_keys_index(), 0, -1)]
        raws = self.redis.mget([keys.api_key(i) for i in ids]) if ids else []
        return [ApiKey(**json.loads(raw)) for raw in raws if raw is not None]

    def revoke(self, key_id: str) -> ApiKey:
        record = self.get(key_id)
        if record.revoked_at is None:
            record.revoked_at = utcnow().isoformat()
            self.redis.set(keys.api_key(key_id), json.dumps(asdict(record)))
        return record

    def verify(self, token: str) -> ApiKey | None:
        """The key's record if ``token`` is a valid, unrevoked key; else None."""
        parsed = parse_key(token)
        if parsed is None:
            return None
        return matching_key(self.redis.get(keys.api_key(parsed[0])), parsed[1])


async def verify_async(client, token: str) -> ApiKey | None:
    """``ApiKeyRepository.verify`` on an asyncio Redis client (the API's request path, no thread hop)."""
    parsed = parse_key(token)
    if parsed is None:
        return None
    return matching_key(await client.get(keys.api_key(parsed[0])), parsed[1])


def matching_key(raw: bytes | str | None, secret: str) -> ApiKey | None:
    """The stored key record ``raw`` if ``secret`` is its secret and it is not revoked; else None."""
    if raw is None:
        return None
    record = ApiKey(**json.loads(raw))
    if record.revoked_at is not None or not hmac.compare_digest(record.secret_sha256, hash_secret(secret)):
        return None
    return record
