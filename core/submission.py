"""What a tenant submits, and the checks that turn it into a priced draft ready to accept.

Every rule of DESIGN.md "Validation" lives here, so the REST API, the batch endpoint and
later the Twilio and SMPP front doors refuse the same things with the same words.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
import phonenumbers

from core import ids, phone_numbers, quiet_hours, segments, smart_encoding
from core.errors import CallbackUrlNotAllowed, FieldError, InvalidRequest
from core.webhook_policy import DestinationPolicy

MIN_VALIDITY_SECONDS = 60
MAX_VALIDITY_SECONDS = 259_200
DEFAULT_VALIDITY_SECONDS = 14_400
MAX_SCHEDULE_AHEAD = timedelta(days=35)
MAX_BODY_CHARS = 1_600  # 10 GSM-7 parts; the segment count is the real limit
MAX_URL_CHARS = 2_048
MAX_CLIENT_REFERENCE_CHARS = 256

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE = re.compile(r"^\d{3,8}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


class SendRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One message as a tenant submits it (``POST /v1/messages``)."""

    to: Annotated[str, msgspec.Meta(description="Recipient, E.164 (+14155552671)")]
    body: Annotated[str, msgspec.Meta(description="Text; 1 to 10 segments")]
    sender: Annotated[
        str | None,
        msgspec.Meta(description="E.164 number, 3-8 digit short code or 1-11 alphanumerics"),
    ] = msgspec.field(default=None, name="from")
    callback_url: str | None = None
    send_at: Annotated[
        datetime | None, msgspec.Meta(description="RFC 3339 with offset, at most 35 days ahead")
    ] = None
    validity_seconds: Annotated[
        int | None, msgspec.Meta(description="60 to 259200; default 14400")
    ] = None
    client_reference: str | None = None
    smart_encoding: Annotated[
        bool | None,
        msgspec.Meta(
            description="Replace characters that have a GSM-7 look-alike (curly quotes, "
            "dashes, ellipsis, Unicode spaces) when that keeps the message GSM-7; "
            "default: the account's setting"
        ),
    ] = None
    quiet_hours: Annotated[
        bool | None,
        msgspec.Meta(
            description="false: leave at once even in the account's quiet hours "
            "(transactional messages, one-time codes)"
        ),
    ] = None


class Draft(msgspec.Struct, frozen=True):
    """A valid message, priced for one tenant, with its id and times fixed."""

    # A msgspec Struct, not a frozen dataclass: a batch makes two of each message (its
    # draft, then priced), and a frozen dataclass of these fields took ~3.5 us to build
    # (a setattr through object per field), a Struct ~0.5.

    id: uuid.UUID
    created_at: datetime
    to: str
    sender: str | None
    body: str
    encoding: segments.Encoding
    segments: int
    # None until the accept prices it from the tenant's rates (inside its statement);
    # set before only for a fixed price (an automatic answer's 0).
    price: int | None
    callback_url: str | None
    client_reference: str | None
    send_at: datetime | None
    expires_at: datetime
    # Which front door made it ('twilio'; None: the REST API), and the Twilio
    # MessagingServiceSid it named: its status callbacks follow that API's format.
    facade: str | None = None
    messaging_service_sid: str | None = None
    # What the accept priced it at: the rate's price per segment, the card, its version
    # and the prefix that matched (None for a fixed price).
    price_per_segment: int | None = None
    rate_card: str | None = None
    rate_card_version: int | None = None
    rate_prefix: str | None = None
    # The destination's country (ISO 3166 alpha-2; None when its code names none): the
    # accept judges the sender by this country's rules.
    to_country: str | None = None
    # It waits for the end of the recipient's quiet hours (its send_at), from the accept.
    quiet_until: datetime | None = None

    @property
    def status(self) -> str:
        return "scheduled" if self.send_at is not None else "queued"


def _clean_text(value: str, field: str, errors: list[FieldError]) -> bool:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8:
    # refuse both here rather than fail at the database.
    if "\x00" in value:
        errors.append(FieldError(field, "must not contain NUL characters"))
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        errors.append(FieldError(field, "must be valid Unicode (no lone surrogates)"))
        return False
    return True


def _check_recipient(
    to: str, errors: list[FieldError]
) -> tuple[phonenumbers.PhoneNumber, str] | None:
    """The recipient's number and its region when it is valid (its country decides the
    sender rules)."""
    if not _clean_text(to, "to", errors):
        return None
    if not E164.match(to):
        errors.append(FieldError("to", "must be an E.164 number such as +14155552671"))
        return None
    try:
        number = phone_numbers.parse_e164(to)
    except phonenumbers.NumberParseException:
        errors.append(FieldError("to", "is not a phone number"))
        return None
    region = phone_numbers.valid_region(number)
    if region is None:
        errors.append(FieldError("to", "is not a valid number for its country"))
        return None
    canonical = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if canonical != to:
        # A national trunk prefix after the country code (+44 07400...) parses to the same
        # number. Taken as written, it would reach the carrier in a form it may refuse and
        # miss the recipient's opt-out, which is kept under the number's E.164 form.
        errors.append(FieldError("to", f"is not in E.164 form: send it as {canonical}"))
        return None
    return number, region


def _check_sender(sender: str, errors: list[FieldError]) -> None:
    if not _clean_text(sender, "from", errors):
        return
    if sender.startswith("+"):
        if not E164.match(sender):
            errors.append(FieldError("from", "must be an E.164 number such as +14155552671"))
        return
    if SHORT_CODE.match(sender) or ALPHANUMERIC_SENDER.match(sender):
        return
    errors.append(
        FieldError(
            "from",
            "must be an E.164 number, a 3-8 digit short code or 1-11 letters, digits "
            "and spaces with at least one letter",
        )
    )


def check_url(url: str, errors: list[FieldError], field: str = "callback_url") -> None:
    """A webhook URL: absolute http(s), at most MAX_URL_CHARS."""
    if not _clean_text(url, field, errors):
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError:  # also "http://[::1": an unclosed IPv6 literal
        errors.append(FieldError(field, "must be an absolute http or https URL"))
        return
    if not url.isprintable() or any(c.isspace() for c in url):
        # urlsplit drops tabs and newlines silently; the HTTP client refuses them.
        errors.append(FieldError(field, "must not contain spaces or control characters"))
        return
    if len(url) > MAX_URL_CHARS:
        errors.append(FieldError(field, f"must be at most {MAX_URL_CHARS} characters"))
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(FieldError(field, "must be an absolute http or https URL"))


def check_destination(url: str | None, policy: DestinationPolicy, field: str) -> None:
    """Refuse a webhook URL whose host is a literal address the policy forbids (422
    ``callback_url_not_allowed``). A host name passes: the worker judges the address it
    resolves to when it connects (jobs/webhook_transport.py). Pure: no database."""
    if url is None or (reason := policy.url_refusal(url)) is None:
        return
    raise CallbackUrlNotAllowed(
        f"'{field}' may not point into the gateway's network: {reason}.",
        [FieldError(field, f"may not point into the gateway's network: {reason}")],
    )


def check_destinations(
    request: SendRequest, policy: DestinationPolicy, field: str = "callback_url"
) -> None:
    """``check_destination`` of a send's ``callback_url`` (``field``: how the front door
    names it, e.g. Twilio's StatusCallback)."""
    check_destination(request.callback_url, policy, field)


def screen_destinations(
    items: list[SendRequest | InvalidRequest], policy: DestinationPolicy
) -> list[SendRequest | InvalidRequest]:
    """A batch's items with each send whose callback_url is refused replaced by its
    refusal, so that item is reported (``callback_url_not_allowed``) and the others
    are accepted."""
    screened: list[SendRequest | InvalidRequest] = []
    for item in items:
        if isinstance(item, SendRequest):
            try:
                check_destinations(item, policy)
            except CallbackUrlNotAllowed as exc:
                screened.append(exc)
                continue
        screened.append(item)
    return screened


def check_sender(sender: str, errors: list[FieldError], field: str = "from") -> None:
    """A number or sender id of ours: E.164, a short code or an alphanumeric sender."""
    before = len(errors)
    _check_sender(sender, errors)
    for i in range(before, len(errors)):
        errors[i] = FieldError(field, errors[i].detail)


def check_recipient(to: str, errors: list[FieldError], field: str = "to") -> None:
    """A handset's number: valid E.164."""
    before = len(errors)
    _check_recipient(to, errors)
    for i in range(before, len(errors)):
        errors[i] = FieldError(field, errors[i].detail)


def _check_send_at(send_at: datetime, now: datetime, errors: list[FieldError]) -> None:
    if send_at.tzinfo is None:
        errors.append(FieldError("send_at", "must carry a time zone offset (RFC 3339)"))
    elif send_at <= now:
        errors.append(FieldError("send_at", "must be in the future"))
    elif send_at > now + MAX_SCHEDULE_AHEAD:
        errors.append(FieldError("send_at", "must be at most 35 days ahead"))


def prepare(
    request: SendRequest,
    *,
    now_ms: int,
    sequence: int | None = None,
    price_per_segment: int | None = None,
    smart: bool = False,
    quiet: tuple[time, time] | None = None,
) -> Draft:
    """Validate ``request``; raise ``InvalidRequest`` listing every problem. The draft is
    priced by the accept from the tenant's rates, unless ``price_per_segment`` fixes it.
    ``smart``: the tenant's smart encoding, when the request does not say. ``quiet``:
    the tenant's quiet hours (start, end): a message that would leave inside them in the
    recipient's local time waits until their end, unless it says ``quiet_hours: false``;
    its validity still counts from when it was meant to leave."""
    errors: list[FieldError] = []
    message_id = ids.uuid7(now_ms, sequence)
    now = ids.created_at(message_id)
    recipient = _check_recipient(request.to, errors)
    if request.sender is not None:
        _check_sender(request.sender, errors)
    if request.callback_url is not None:
        check_url(request.callback_url, errors)
    if request.send_at is not None:
        _check_send_at(request.send_at, now, errors)
    validity = request.validity_seconds
    if validity is None:
        validity = DEFAULT_VALIDITY_SECONDS
    elif not MIN_VALIDITY_SECONDS <= validity <= MAX_VALIDITY_SECONDS:
        errors.append(
            FieldError(
                "validity_seconds",
                f"must be between {MIN_VALIDITY_SECONDS} and {MAX_VALIDITY_SECONDS}",
            )
        )
    reference = request.client_reference
    if (
        reference is not None
        and _clean_text(reference, "client_reference", errors)
        and len(reference) > MAX_CLIENT_REFERENCE_CHARS
    ):
        errors.append(
            FieldError("client_reference", f"must be at most {MAX_CLIENT_REFERENCE_CHARS} chars")
        )
    count = segments.SegmentCount("GSM-7", 1, 0)
    body = request.body
    if _clean_text(body, "body", errors):
        if not body:
            errors.append(FieldError("body", "must not be empty"))
        elif len(body) > MAX_BODY_CHARS * 2:
            errors.append(FieldError("body", "is longer than 10 segments"))
        else:
            if request.smart_encoding if request.smart_encoding is not None else smart:
                # The text actually sent, stored as the message's body.
                body = smart_encoding.encode(body)
            count = segments.count(body)
            if count.segments > segments.MAX_SEGMENTS:
                errors.append(
                    FieldError(
                        "body",
                        f"needs {count.segments} segments ({count.encoding}); at most "
                        f"{segments.MAX_SEGMENTS} are allowed",
                    )
                )
    if errors:
        raise InvalidRequest("The message is not valid.", errors)
    start = request.send_at or now
    send_at, quiet_until = request.send_at, None
    if quiet is not None and recipient is not None and request.quiet_hours is not False:
        quiet_until = quiet_hours.opens_at(recipient[0], quiet[0], quiet[1], start)
        if quiet_until is not None:
            send_at = quiet_until
    return Draft(
        id=message_id,
        created_at=now,
        to=request.to,
        sender=request.sender,
        body=body,
        encoding=count.encoding,
        segments=count.segments,
        price=None if price_per_segment is None else count.segments * price_per_segment,
        callback_url=request.callback_url,
        client_reference=request.client_reference,
        send_at=send_at,
        expires_at=start + timedelta(seconds=validity),
        to_country=None if recipient is None else phone_numbers.country_of(recipient[1]),
        quiet_until=quiet_until,
    )


def priced(draft: Draft, rate: Mapping[str, Any]) -> Draft:
    """``draft`` with the price, rate and sender its accept gave it (a row of the accept
    call: ``price``, ``price_per_segment``, ``rate_card``, ``rate_card_version``,
    ``rate_prefix``, ``sender``: the one chosen when the draft named none)."""
    return priced_at(
        draft,
        rate["price"],
        rate["price_per_segment"],
        rate["rate_card"],
        rate["rate_card_version"],
        rate["rate_prefix"],
        rate.get("sender", draft.sender),
    )


def priced_at(
    draft: Draft,
    price: int,
    price_per_segment: int | None,
    rate_card: str | None,
    rate_card_version: int | None,
    rate_prefix: str | None,
    sender: str | None,
) -> Draft:
    """``priced`` from its fields in that order, as a batch's accept answers them."""
    return msgspec.structs.replace(
        draft,
        sender=sender,
        price=price,
        price_per_segment=price_per_segment,
        rate_card=rate_card,
        rate_card_version=rate_card_version,
        rate_prefix=rate_prefix,
    )
