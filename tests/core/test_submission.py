"""Validation and pricing of one submitted message (DESIGN.md, "Validation")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from core import accept, submission
from core.errors import InvalidRequest
from tests.support import OTHER_TO, VALID_TO

PRICE = 7_900


def prepare(**fields: Any) -> submission.Draft:
    request = submission.SendRequest(**{"to": VALID_TO, "body": "hello", **fields})
    return submission.prepare(request, price_per_segment=PRICE, now_ms=accept.now_ms())


def refused(**fields: Any) -> dict[str, str]:
    """The field errors ``fields`` get, by field name."""
    with pytest.raises(InvalidRequest) as caught:
        prepare(**fields)
    assert caught.value.errors, "an InvalidRequest names the fields at fault"
    return {e.field: e.detail for e in caught.value.errors}


def in_future(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


@pytest.mark.parametrize("to", [VALID_TO, OTHER_TO, "+33612345678", "+4915123456789"])
def test_valid_recipients(to: str) -> None:
    assert prepare(to=to).to == to


@pytest.mark.parametrize(
    "to",
    [
        pytest.param("14155552671", id="no-plus"),
        pytest.param("+014155552671", id="leading-zero"),
        pytest.param("+1 415 555 2671", id="spaces"),
        pytest.param("+1415555267a", id="letter"),
        pytest.param("+1234567890123456", id="sixteen-digits"),
        pytest.param("+1", id="too-short"),
        pytest.param("", id="empty"),
        pytest.param("+10005552671", id="regex-ok-but-invalid-us-area-code"),
        pytest.param("+99912345678", id="regex-ok-but-unassigned-country-code"),
        pytest.param("+4412", id="regex-ok-but-too-short-for-uk"),
    ],
)
def test_invalid_recipients(to: str) -> None:
    assert "to" in refused(to=to)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("+4407400123456", "+447400123456"), ("+330612345678", "+33612345678")],
)
def test_a_trunk_prefix_after_the_country_code_is_refused_with_the_e164_form(
    written: str, canonical: str
) -> None:
    # phonenumbers parses both to a valid number; stored as written, a STOP from the
    # handset (kept under its E.164 form) would not stop a send to it.
    assert refused(to=written) == {"to": f"is not in E.164 form: send it as {canonical}"}


@pytest.mark.parametrize(
    "sender",
    ["+14155552671", "123", "12345678", "ACME", "A", "ACME Store1", "Shop24"],
)
def test_valid_senders(sender: str) -> None:
    assert prepare(sender=sender).sender == sender


@pytest.mark.parametrize(
    "sender",
    [
        pytest.param("12", id="two-digit-short-code"),
        pytest.param("123456789", id="nine-digit-short-code"),
        pytest.param("ACMESTORE123", id="twelve-alphanumerics"),
        pytest.param("ACME-CO", id="hyphen"),
        pytest.param("ACMÉ", id="non-ascii-letter"),
        pytest.param("", id="empty"),
        pytest.param("+0123", id="bad-e164"),
        pytest.param("ACME\x00", id="nul"),
    ],
)
def test_invalid_senders(sender: str) -> None:
    assert "from" in refused(sender=sender)


def test_send_at_in_the_future_schedules_the_message() -> None:
    at = in_future(hours=1)
    draft = prepare(send_at=at)
    assert draft.status == "scheduled"
    assert draft.expires_at == at + timedelta(seconds=submission.DEFAULT_VALIDITY_SECONDS)


def test_send_at_up_to_35_days_ahead_is_accepted() -> None:
    assert prepare(send_at=in_future(days=35, minutes=-1)).status == "scheduled"


@pytest.mark.parametrize(
    "make_send_at",
    [
        # Built when the test runs, not when it is collected: the suite takes minutes.
        pytest.param(lambda: in_future(seconds=-1), id="past"),
        pytest.param(lambda: in_future(days=35, minutes=1), id="over-35-days"),
        pytest.param(lambda: in_future(hours=1).replace(tzinfo=None), id="no-time-zone"),
    ],
)
def test_invalid_send_at(make_send_at: Callable[[], datetime]) -> None:
    assert "send_at" in refused(send_at=make_send_at())


@pytest.mark.parametrize("seconds", [60, 14_400, 259_200])
def test_valid_validity(seconds: int) -> None:
    draft = prepare(validity_seconds=seconds)
    assert draft.expires_at == draft.created_at + timedelta(seconds=seconds)


def test_validity_defaults_to_four_hours() -> None:
    draft = prepare()
    assert draft.expires_at - draft.created_at == timedelta(seconds=14_400)


@pytest.mark.parametrize("seconds", [-1, 0, 59, 259_201])
def test_invalid_validity(seconds: int) -> None:
    assert "validity_seconds" in refused(validity_seconds=seconds)


@pytest.mark.parametrize("url", ["https://example.com/cb", "http://example.com:8080/x?y=1"])
def test_valid_callback_urls(url: str) -> None:
    assert prepare(callback_url=url).callback_url == url


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cb", "example.com/cb", "https://", "javascript:alert(1)", "", "/cb"],
)
def test_invalid_callback_urls(url: str) -> None:
    assert "callback_url" in refused(callback_url=url)


@pytest.mark.parametrize("field", ["to", "body", "sender", "callback_url", "client_reference"])
def test_nul_characters_are_refused_in_every_text_field(field: str) -> None:
    base = {
        "to": VALID_TO,
        "body": "hello",
        "sender": "ACME",
        "callback_url": "https://example.com/cb",
        "client_reference": "ref",
    }
    base[field] = base[field] + "\x00"
    wire_name = "from" if field == "sender" else field
    assert wire_name in refused(**base)


def test_empty_body_is_refused() -> None:
    assert "body" in refused(body="")


def test_body_over_ten_segments_is_refused() -> None:
    assert prepare(body="a" * 1530).segments == 10
    assert "body" in refused(body="a" * 1531)
    assert "body" in refused(body="ж" * 671)
    assert "body" in refused(body="a" * 100_000)


def test_every_problem_is_reported_at_once() -> None:
    problems = refused(to="bad", sender="!", validity_seconds=1, callback_url="ftp://x")
    assert set(problems) == {"to", "from", "validity_seconds", "callback_url"}


@pytest.mark.parametrize(
    ("body", "encoding", "parts"),
    [("hello", "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("жж", "UCS-2", 1), ("😀" * 36, "UCS-2", 2)],
)
def test_price_is_segments_times_price_per_segment(body: str, encoding: str, parts: int) -> None:
    draft = prepare(body=body)
    assert (draft.encoding, draft.segments, draft.price) == (encoding, parts, parts * PRICE)


def test_pricing_a_draft_keeps_everything_else_it_carries():
    # Every field set to something other than its default: a field added to Draft and
    # forgotten by `priced` would lose what the tenant sent (its validity, its facade...).
    now = datetime.now(UTC)
    draft = submission.Draft(
        id=uuid.uuid4(),
        created_at=now,
        to="+447400123456",
        sender=None,
        body="hello",
        encoding="UCS-2",
        segments=2,
        price=None,
        callback_url="https://example.com/cb",
        client_reference="ref-1",
        send_at=now + timedelta(hours=1),
        expires_at=now + timedelta(days=1),
        facade="twilio",
        messaging_service_sid="MG0123",
        to_country="GB",
        quiet_until=now + timedelta(hours=1),
    )
    rate = {
        "price": 70_000,
        "price_per_segment": 35_000,
        "rate_card": "gb",
        "rate_card_version": 3,
        "rate_prefix": "447",
        "sender": "ACME",
    }
    priced = submission.priced(draft, rate)
    assert priced == msgspec.structs.replace(
        draft,
        sender="ACME",
        price=70_000,
        price_per_segment=35_000,
        rate_card="gb",
        rate_card_version=3,
        rate_prefix="447",
    )
    for field in msgspec.structs.fields(submission.Draft):
        assert getattr(priced, field.name) != field.default, field.name
