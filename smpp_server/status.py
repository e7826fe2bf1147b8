"""The one place where refusals become SMPP command_status values, as app/errors.py
does for HTTP. Domain errors carry no status; the table below gives it.

submit_sm_resp:

| refusal                                                        | command_status            |
|----------------------------------------------------------------|---------------------------|
| `to` not a valid E.164 number (core validation)                | ESME_RINVDSTADR   0x0B    |
| destination TON other than unknown or international            | ESME_RINVDSTTON   0x50    |
| `from` not a number, short code or alphanumeric sender         | ESME_RINVSRCADR   0x0A    |
| body empty or over 10 segments; more than 10 parts announced   | ESME_RINVMSGLEN   0x01    |
| validity_period malformed                                      | ESME_RINVEXPIRY   0x62    |
| schedule_delivery_time malformed or over 35 days ahead         | ESME_RINVSCHED    0x61    |
| esm_class message type not "default"; UDH malformed or carrying | ESME_RINVESMCLASS 0x43    |
|   more than concatenation (ports, national language tables)    |                           |
| SAR TLVs: one of the three missing                             | ESME_RMISSINGOPTPARAM 0xC3|
| SAR TLVs: of the wrong length                                  | ESME_RINVPARLEN   0xC2    |
| SAR TLVs: segment number 0 or past the total                   | ESME_RINVOPTPARAMVAL 0xC4 |
| short_message and message_payload both set                     | ESME_RINVOPTPARAMVAL 0xC4 |
| data_coding not 0, 1, 3 or 8, or octets it cannot hold         | ESME_RSUBMITFAIL  0x45    |
| over the tenant's rate_limit_mps                               | ESME_RTHROTTLED   0x58    |
| available credit does not cover the message                    | ESME_RSUBMITFAIL  0x45    |
| recipient opted out (texted STOP; issue 8)                     | ESME_RX_P_APPN    0x65    |
| destination country not in the tenant's geo permissions        | ESME_RINVDSTADR   0x0B    |
| destination suspended by pumping protection (retry later)      | ESME_RX_T_APPN    0x64    |
| the day's or month's spend cap reached                         | ESME_RX_T_APPN    0x64    |
| the tenant suspended by the operator                           | ESME_RSUBMITFAIL  0x45    |
| database unreachable or its pool exhausted                     | ESME_RSYSERR      0x08    |
| anything unexpected (logged)                                   | ESME_RSYSERR      0x08    |
| submit_sm before a bind, or on a receiver bind                 | ESME_RINVBNDSTS   0x04    |

Binds: ESME_RINVPASWD (0x0E) for an unknown system_id or a wrong password (one answer,
so a guess learns nothing about which system_ids exist; the log says which),
ESME_RBINDFAIL (0x0D) for an address outside the account's networks, a suspended
tenant, a tenant at its bind limit, an address blocked after too many failed binds, or
fields outside SMPP's tables; ESME_RALYBND (0x05) for a second bind on a bound
connection; ESME_RSYSERR when the database is down. A PDU whose body is shorter than
its fields say gets generic_nack ESME_RINVCMDLEN (0x02); an unknown command,
generic_nack ESME_RINVCMDID (0x03).
"""

from __future__ import annotations

import psycopg
import psycopg_pool

from core import errors

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVESMCLASS = 0x43
ESME_RSUBMITFAIL = 0x45
ESME_RINVDSTTON = 0x50
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RINVPARLEN = 0xC2
ESME_RMISSINGOPTPARAM = 0xC3
ESME_RINVOPTPARAMVAL = 0xC4


class Refused(Exception):
    """A submit_sm the SMPP layer itself refuses, before or after the core's checks."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# The first field error decides, in this order: an ESME fixes addresses first.
_FIELDS: tuple[tuple[str, int], ...] = (
    ("to", ESME_RINVDSTADR),
    ("from", ESME_RINVSRCADR),
    ("body", ESME_RINVMSGLEN),
    ("send_at", ESME_RINVSCHED),
    ("validity_seconds", ESME_RINVEXPIRY),
)


def submit_status(exc: BaseException) -> int:
    """The submit_sm_resp command_status that tells an ESME why ``exc`` refused it."""
    if isinstance(exc, Refused):
        return exc.status
    if isinstance(exc, errors.RateLimited):
        return ESME_RTHROTTLED
    if isinstance(exc, errors.InsufficientCredit):
        return ESME_RSUBMITFAIL
    if isinstance(exc, errors.RecipientOptedOut):
        return ESME_RX_P_APPN
    if isinstance(exc, errors.DestinationSuspended | errors.SpendLimitReached):
        # Temporary: the suspension ends, the day or month turns, the cap is raised.
        return ESME_RX_T_APPN
    if isinstance(exc, errors.TenantSuspended):
        # Bound before the suspension: its binds close within seconds (server upkeep).
        return ESME_RSUBMITFAIL
    if isinstance(exc, errors.DestinationNotPermitted):
        # The gateway will not send there for this ESME: the address is the problem.
        return ESME_RINVDSTADR
    if isinstance(
        exc,
        errors.SenderNotAllowed
        | errors.SenderNotAllowedForDestination
        | errors.NoSenderForDestination,
    ):
        # The source address is not the ESME's to use (or not to that destination).
        return ESME_RINVSRCADR
    if isinstance(exc, errors.DestinationNotPriced):
        # The gateway sells nothing to that destination: the address is the problem.
        return ESME_RINVDSTADR
    if isinstance(exc, errors.InvalidRequest):
        fields = {e.field for e in exc.errors}
        for field, status in _FIELDS:
            if field in fields:
                return status
        return ESME_RSUBMITFAIL
    if isinstance(exc, errors.DomainError):
        return ESME_RSUBMITFAIL
    return ESME_RSYSERR


def is_outage(exc: BaseException) -> bool:
    """The database is down or busy: not the ESME's fault, worth a retry."""
    return isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout)
