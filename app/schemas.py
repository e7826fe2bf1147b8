"""Request and response bodies of the admin and account endpoints (message bodies are
``core`` structs: the same shape serves every front door)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

Tier = Literal["vip", "premium", "standard"]


class CreateTenant(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    tier: Tier = "standard"
    rate_limit_mps: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class TenantCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    tier: Tier
    rate_limit_mps: int | None
    api_key: Annotated[str, msgspec.Meta(description="Shown once; only its hash is kept")]
    api_key_id: uuid.UUID
    webhook_secret: Annotated[str, msgspec.Meta(description="Shown once; signs callbacks")]
    price_per_segment: int
    currency: str
    created_at: datetime


class UpdateTenant(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Absent fields stay as they are; `rate_limit_mps: null` removes the limit."""

    tier: Tier | msgspec.UnsetType = msgspec.UNSET
    rate_limit_mps: Annotated[int, msgspec.Meta(ge=1, le=1000000)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    price_per_segment: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET


class TenantView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    tier: Tier
    rate_limit_mps: int | None
    price_per_segment: int
    currency: str
    created_at: datetime
    available: int
    held: int
    captured: int


class CreditRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Annotated[int, msgspec.Meta(ge=1, description="Micro-units (1,000,000 = 1 unit)")]
    reference: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="Unique per tenant")
    ]


class BalanceView(msgspec.Struct, kw_only=True):
    available: int
    held: int
    captured: int


class AccountBalance(msgspec.Struct, kw_only=True):
    available: int
    held: int
    captured: int
    currency: str


class ApiKeyCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    api_key: Annotated[str, msgspec.Meta(description="Shown once; only its hash is kept")]
    created_at: datetime


class Health(msgspec.Struct, kw_only=True):
    status: str
    detail: str | None = None
