"""The SMPP 3.4 server: tenants' ESMEs bind to smsgw (``smsgw smpp``).

Why it is built on a codec and asyncio streams rather than a library's server. The
maintained asyncio SMPP libraries for Python are aiosmpplib (an ESME only: no server
side at all) and smpp34 (Rust, with a server). smpp34's ``Server`` was tried for this
and cannot serve tenants:

- it answers every bind_transmitter/receiver/transceiver with ESME_ROK before Python
  hears of it: the ``Esme`` it yields carries system_id but not the password, so no
  per-tenant password check is possible, and a refused bind (ESME_RINVPASWD,
  ESME_RBINDFAIL for a full bind limit) cannot be answered: only an unbind afterwards;
- it does not tell Python the peer's address, so an IP allow-list cannot be checked;
- it cannot report the port it bound (port 0, which tests need) nor drop a connection.

(The same limits made the adapter's test SMSC, tests/providers/smsc.py, use asyncio
streams with smpp34's codec.) So this package runs its own sessions on asyncio streams
(session.py) with aiosmpplib's PDU codec (pdu.py), the codec our SMPP adapter uses too;
its tests bind with smpplib, an independent implementation (sync, in a thread), so each
side checks the other.

Modules: ``pdu`` (framing, binds, the PDUs we send), ``submit_sm`` (a submit_sm body
read as octets: fields, UDH, SMPP times, text codings), ``submit`` (what a submit_sm asks
for, in the gateway's terms), ``intake`` (the accept transaction, long messages),
``status`` (refusals to command_status: the documented table), ``session`` (one ESME
connection), ``outbox`` (receipts and inbound messages to receiver binds), ``server``
(the listener, bind slots, upkeep).
"""
