"""The settings of an SMPP upstream (the `config` of a provider of kind smpp), apart
from the adapter so that reading or checking them does not import the SMPP codec."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    # Outstanding submit_sm at most (the SMSC's window, usually agreed in the contract).
    window: int = 10
    enquire_link_seconds: float = 30.0
    submit_timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 10.0
    reconnect_base_seconds: float = 0.5
    reconnect_cap_seconds: float = 30.0
    # How long every sender stops after a throttling answer (also its retry_after).
    throttle_pause_seconds: float = 1.0
    # submit_sm per second at most for this bind (each part counts); None: no cap.
    mps: float | None = None
    source_addr: str = ""
    # The TON/NPI of an all-digit sender of 3-8 digits (a short code); None: network
    # specific (3) and unknown plan (0), what SMSCs take short codes as. An E.164 sender
    # always goes as international/ISDN (1/1), an alphanumeric one as 5/0.
    source_ton: int | None = None
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    registered_delivery: int = 1
    # The base in which the SMSC writes message ids: in submit_sm_resp (and, as the spec
    # says, the receipted_message_id TLV), and in the id: field of receipt texts. 16 or
    # 10 for numbers, None for opaque ids; see smpp_codec.canonical_message_id.
    submit_id_base: int | None = None
    receipt_id_base: int | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"smpp window must be at least 1, not {self.window}")
        for name in (
            "enquire_link_seconds",
            "submit_timeout_seconds",
            "connect_timeout_seconds",
            "reconnect_base_seconds",
            "reconnect_cap_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"smpp {name} must be positive")
        if self.throttle_pause_seconds < 0:
            raise ValueError("smpp throttle_pause_seconds must not be negative")
        if self.mps is not None and self.mps <= 0:
            raise ValueError(f"smpp mps must be positive, not {self.mps}")
        for name in ("submit_id_base", "receipt_id_base"):
            if getattr(self, name) not in (None, 10, 16):
                raise ValueError(f"smpp {name} must be 10, 16 or None")
        if len(self.system_id) > 15 or len(self.password) > 8 or len(self.system_type) > 12:
            raise ValueError("smpp system_id/password/system_type exceed 15/8/12 characters")
