"""SMS user data as text, whichever upstream carried it: the data codings of 3GPP TS
23.038 that handsets use (0 the GSM 7-bit default alphabet, one septet per octet as
SMPP and HTTP gateways carry it; 1 IA5/ASCII; 3 Latin-1; 8 UCS-2, read as UTF-16 so
surrogate pairs count too).

``InboundPart`` hands a mobile-originated part over as its data_coding and octets, and
core/inbound.py joins the octets of a long message's parts before decoding them here:
a character split across two parts (a UCS-2 surrogate pair, a GSM escape) survives.
"""

from __future__ import annotations

from aiosmpplib import GSM7BitCodec

_GSM = GSM7BitCodec()


def decode_text(data_coding: int, payload: bytes) -> str | None:
    """Text of a payload in the codings handsets use; None for binary or unknown ones."""
    if data_coding == 0:
        return str(_GSM.decode(payload, "replace")[0])
    if data_coding == 8:
        return payload.decode("utf-16-be", "replace")
    if data_coding == 1:
        return payload.decode("ascii", "replace")
    if data_coding == 3:
        return payload.decode("latin-1")
    return None
