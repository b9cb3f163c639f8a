"""API keys: the model file's master key and virtual keys per team, stored hashed in Redis.

A virtual key is shown once, when it is created; Redis holds only its SHA-256 (``{prefix}:
key:{sha256}`` → team, user, alias, created) and an index of the hashes, so a copy of Redis
lets no one call the gateway. A key's id (the first 16 hex digits of its hash) names it in
listings and revocations.

Keys fail closed: a key never verified cannot pass while Redis is down (503, so clients retry).
A key verified lately is trusted from memory for ``cache_s`` without asking Redis, and for
``stale_s`` more while Redis does not answer: a Redis blip refuses no known client. A
revocation reaches this replica at once and the others within ``cache_s``.

Which key made each decision is remembered (``{prefix}:decision:{id}`` with a TTL) so feedback
is accepted only from that key (or the master key).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from routeiq.dependencies import Dependency

from routeiq_gateway.errors import InvalidApiKey, KeysUnavailable, NotFound

KEY_PREFIX = "sk-riq-"
KEY_ID_HEX = 16


def hash_key(key: str) -> str:
    """The SHA-256 of a key, hex: what Redis stores instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def redacted(key: str) -> str:
    """A key as it may appear in an error message (OpenAI shows ``sk-abc***wxyz``)."""
    return key[:6] + "***" + key[-4:] if len(key) > 12 else "***"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request's key says is calling: the team and user that A/B units, rollout flags
    and budgets use, whatever the request's own fields say."""

    key_hash: str
    team: str | None = None
    user: str | None = None
    master: bool = False

    @property
    def key_id(self) -> str:
        return self.key_hash[:KEY_ID_HEX]


def bearer(authorization: str) -> str:
    """The key of an ``Authorization: Bearer KEY`` header ("" when there is none)."""
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@dataclass(kw_only=True, eq=False)
class KeyStore:
    """Virtual keys in Redis, with the in-process cache of verified keys."""

    redis: Redis
    dependency: Dependency
    prefix: str = "routeiq"
    cache_s: float = 30.0
    stale_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _verified: dict[str, tuple[float, Caller]] = field(default_factory=dict, init=False)

    def _key(self, key_hash: str) -> str:
        return f"{self.prefix}:key:{key_hash}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:keys"

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[None]:
        """An admin operation on the store: Redis down is a 503, not a 500."""
        try:
            yield
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
            raise KeysUnavailable(f"the key store does not answer: {exc}") from exc
        self.dependency.recovered()

    async def create(
        self, *, team: str, user: str | None = None, alias: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A new key for ``team`` (and ``user``): (the key, shown only now; its record)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_hash = hash_key(key)
        record = {
            "key_id": key_hash[:KEY_ID_HEX],
            "team": team,
            "user": user,
            "alias": alias,
            "created_at": int(time.time()),
        }
        async with self._admin(), self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(key_hash), json.dumps(record))
            pipe.sadd(self._index, key_hash)
            await pipe.execute()
        return key, record

    async def list(self, *, team: str | None = None) -> list[dict[str, Any]]:
        """The keys' records (never a key nor its full hash), oldest first."""
        async with self._admin():
            hashes = sorted(_text(h) for h in await self.redis.smembers(self._index))
            raw = await self.redis.mget([self._key(h) for h in hashes]) if hashes else []
        records = [json.loads(r) for r in raw if r is not None]
        if team is not None:
            records = [r for r in records if r["team"] == team]
        return sorted(records, key=lambda r: (r["created_at"], r["key_id"]))

    async def revoke(self, key_id: str) -> dict[str, Any] | None:
        """Delete the key whose id is ``key_id``; its record, or None if there is none."""
        if len(key_id) != KEY_ID_HEX:
            return None
        async with self._admin():
            members = [_text(h) for h in await self.redis.smembers(self._index)]
            matches = [h for h in members if h.startswith(key_id)]
            if len(matches) != 1:
                return None
            (key_hash,) = matches
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self._key(key_hash))
                pipe.delete(self._key(key_hash))
                pipe.srem(self._index, key_hash)
                raw, *_ = await pipe.execute()
        self._verified.pop(key_hash, None)  # this replica refuses it from now on
        return json.loads(raw) if raw is not None else None

    async def verify(self, key: str) -> Caller | None:
        """The caller a virtual key stands for, None when it is unknown or revoked;
        ``KeysUnavailable`` when Redis does not answer and the key was not verified lately."""
        key_hash = hash_key(key)
        now = self.clock()
        cached = self._verified.get(key_hash)
        if cached is not None and now - cached[0] <= self.cache_s:
            return cached[1]
        try:
            raw = await self.redis.get(self._key(key_hash))
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
            if cached is not None and now - cached[0] <= self.cache_s + self.stale_s:
                return cached[1]
            raise KeysUnavailable(
                "the key store does not answer and this key was not verified lately; retry"
            ) from exc
        self.dependency.recovered()
        if raw is None:
            self._verified.pop(key_hash, None)
            return None
        record = json.loads(raw)
        caller = Caller(key_hash, team=record["team"], user=record.get("user"))
        self._verified[key_hash] = (now, caller)
        return caller


@dataclass(kw_only=True, eq=False)
class Access:
    """Who may call the OpenAI surface: nobody is asked for a key unless a master key or the
    virtual key store is configured (then every chat and feedback request needs one)."""

    master_key: str | None = None
    store: KeyStore | None = None
    # Which key made each decision (needs Redis; None: feedback is not checked by owner).
    owners: DecisionOwners | None = None

    @property
    def enabled(self) -> bool:
        return self.master_key is not None or self.store is not None

    async def caller(self, authorization: str) -> Caller | None:
        """The request's caller (None when keys are off); ``InvalidApiKey`` without a valid key."""
        if not self.enabled:
            return None
        key = bearer(authorization)
        if not key:
            raise InvalidApiKey(
                "You didn't provide an API key: send it as Authorization: Bearer KEY"
            )
        # Constant time: the comparison must not tell how much of the master key was right.
        if self.master_key is not None and hmac.compare_digest(
            key.encode(), self.master_key.encode()
        ):
            return Caller(hash_key(key), master=True)
        found = await self.store.verify(key) if self.store is not None else None
        if found is None:
            raise InvalidApiKey(f"Incorrect API key provided: {redacted(key)}")
        return found


@dataclass(kw_only=True, eq=False)
class DecisionOwners:
    """decision id → the hash of the key that made it, for ``ttl_s`` (feedback's check)."""

    redis: Redis
    dependency: Dependency
    prefix: str = "routeiq"
    ttl_s: int = 24 * 3600

    def _key(self, decision_id: str) -> str:
        return f"{self.prefix}:decision:{decision_id}"

    async def remember(self, decision_id: str, caller: Caller) -> None:
        """Record who made a decision; Redis down: marked degraded, the request still served
        (its feedback will then be refused, the safe side)."""
        try:
            await self.redis.set(self._key(decision_id), caller.key_hash, ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
            return
        self.dependency.recovered()

    async def check(self, decision_id: str, caller: Caller) -> None:
        """``NotFound`` unless ``caller`` made the decision (the master key may score any)."""
        if caller.master:
            return
        try:
            owner = await self.redis.get(self._key(decision_id))
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
            raise KeysUnavailable("the key store does not answer; retry the feedback") from exc
        self.dependency.recovered()
        if owner is None or not hmac.compare_digest(_text(owner), caller.key_hash):
            # Not found rather than forbidden: another key's decision ids are not confirmed.
            raise NotFound(
                f"no decision {decision_id!r} made with this key (feedback is accepted only "
                "from the key that made the request)",
                param="decision_id",
                code="decision_not_found",
            )
