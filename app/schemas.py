"""Request and response bodies of the admin and account endpoints (message bodies are
``core`` structs: the same shape serves every front door)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

Tier = Literal["vip", "premium", "standard"]
InboundFormat = Literal["json", "twilio"]
SenderPolicy = Literal["own", "any"]


Clock = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["21:00"])]


class QuietHours(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A window of the recipient's local day (end before start: across midnight)."""

    start: Clock
    end: Clock


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
    inbound_url: (
        Annotated[str, msgspec.Meta(description="Inbound messages are POSTed here; null: off")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    help_reply: (
        Annotated[str, msgspec.Meta(description="The free answer to HELP; null: none")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    inbound_format: (
        Annotated[
            InboundFormat,
            msgspec.Meta(
                description="How inbound messages are POSTed: `json`, or `twilio` (Twilio's "
                "incoming-message webhook, form-encoded, X-Twilio-Signature; a TwiML "
                "<Message> answer is sent as a reply)"
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    rate_card: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=64, description="The rate card it is priced by; null: its tier's"
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    sender_policy: (
        Annotated[
            SenderPolicy,
            msgspec.Meta(
                description="`any` lets the tenant send from any sender (legacy "
                "integrations); `own` (the default): only its numbers and sender IDs"
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    smart_encoding: (
        Annotated[
            bool,
            msgspec.Meta(
                description="Replace characters that have a GSM-7 look-alike (curly quotes, "
                "dashes, ellipsis, Unicode spaces...) when that keeps a message GSM-7; a "
                "message's `smart_encoding` overrides it"
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    quiet_hours: (
        Annotated[
            QuietHours,
            msgspec.Meta(
                description="Messages that would leave in this window of the recipient's "
                "local time wait until its end (a message's `quiet_hours: false` leaves "
                "at once); null: none"
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    daily_spend_cap: (
        Annotated[
            int,
            msgspec.Meta(
                description="Micro-units the tenant may spend (held plus captured) per UTC "
                "day; a send past it is refused with 402 spend_limit_reached; null: none"
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    monthly_spend_cap: (
        Annotated[int, msgspec.Meta(description="The same per UTC month; null: none")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    low_balance_threshold: (
        Annotated[
            int,
            msgspec.Meta(description="balance.low is sent when available drops under it"),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    alerts_url: (
        Annotated[str, msgspec.Meta(description="Alerts are POSTed here, signed; null: off")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    spend_alert_percents: (
        Annotated[list[int], msgspec.Meta(description="Shares of a cap that send spend.threshold")]
        | msgspec.UnsetType
    ) = msgspec.UNSET


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
    inbound_url: str | None = None
    help_reply: str | None = None
    inbound_format: InboundFormat = "json"
    rate_card: Annotated[
        str | None, msgspec.Meta(description="The rate card it is on (its tier's by default)")
    ] = None
    sender_policy: Annotated[
        SenderPolicy,
        msgspec.Meta(description="`own`: only its numbers and sender IDs; `any`: any sender"),
    ] = "own"
    smart_encoding: bool = False
    quiet_hours: QuietHours | None = None
    daily_spend_cap: int | None = None
    monthly_spend_cap: int | None = None
    # Spent (held or captured) in the current UTC day and month.
    day_spent: int = 0
    month_spent: int = 0
    low_balance_threshold: int | None = None
    alerts_url: str | None = None
    spend_alert_percents: list[int] = msgspec.field(default_factory=lambda: [50, 80, 100])
    suspended_at: Annotated[
        datetime | None,
        msgspec.Meta(description="Since when the operator has it suspended (null: active)"),
    ] = None
    suspension_reason: str | None = None


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


# -- SMPP credentials (issue 9) ---------------------------------------------------------

_NETWORKS = msgspec.Meta(
    description="IP addresses or CIDR networks binds may come from; null: anywhere"
)


class SmppCredentialsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    system_id: (
        Annotated[str, msgspec.Meta(description="1-15 printable ASCII; default: generated")] | None
    ) = None
    max_binds: (
        Annotated[int, msgspec.Meta(description="Simultaneous binds of the tenant (4)")] | None
    ) = None
    allowed_networks: Annotated[list[str] | None, _NETWORKS] | msgspec.UnsetType = msgspec.UNSET


class SmppCredentialsUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_binds: int | None = None
    allowed_networks: Annotated[list[str] | None, _NETWORKS] | msgspec.UnsetType = msgspec.UNSET


class SmppCredentialsIssued(msgspec.Struct, kw_only=True):
    tenant_id: uuid.UUID
    system_id: str
    password: Annotated[str, msgspec.Meta(description="8 characters; shown once")]
    max_binds: int
    allowed_networks: list[str] | None
    created_at: datetime


class SmppCredentialsView(msgspec.Struct, kw_only=True):
    tenant_id: uuid.UUID
    system_id: str
    max_binds: int
    allowed_networks: list[str] | None
    binds: Annotated[int, msgspec.Meta(description="Binds up now, across every listener")]
    created_at: datetime
    password_changed_at: datetime
