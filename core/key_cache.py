"""The tenants of API keys this process authenticated recently, for the single-send path.

Authenticating is a database round trip of its own; on `POST /v1/messages` it cost the
API about a quarter of its CPU. A key found here is not trusted on its own: the accept
call is given the key's id and the tenant's settings it was made with, and refuses
(``stale``) unless the key is still live and those settings are still the tenant's, in
the same statement that holds the credit. A revoked key or a changed tier or rate limit
therefore takes effect at once, as with a lookup per request; the caller then forgets
the entry and authenticates again. Prices are never cached: the accept statement reads
the tenant's rates itself.

Entries are keyed by a digest of the whole key, never the key itself, and live
``ttl_seconds``; the cache holds at most ``max_entries`` (the oldest go first).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from core.tenants import Tenant


@dataclass(frozen=True, slots=True)
class KnownKey:
    key_id: uuid.UUID
    tenant: Tenant
    expires: float


class KeyCache:
    def __init__(self, *, ttl_seconds: float = 60.0, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[bytes, KnownKey] = {}

    @staticmethod
    def _slot(api_key: str) -> bytes:
        return hashlib.sha256(api_key.encode()).digest()

    def get(self, api_key: str) -> KnownKey | None:
        slot = self._slot(api_key)
        known = self._entries.get(slot)
        if known is None:
            return None
        if known.expires <= time.monotonic():
            del self._entries[slot]
            return None
        return known

    def put(self, api_key: str, *, key_id: uuid.UUID, tenant: Tenant) -> None:
        slot = self._slot(api_key)
        self._entries.pop(slot, None)
        while len(self._entries) >= self.max_entries:
            # dicts keep insertion order: the first entry is the oldest.
            del self._entries[next(iter(self._entries))]
        self._entries[slot] = KnownKey(
            key_id=key_id, tenant=tenant, expires=time.monotonic() + self.ttl_seconds
        )

    def forget(self, api_key: str) -> None:
        self._entries.pop(self._slot(api_key), None)
