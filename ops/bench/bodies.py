"""What the bench's load sends: the JSON bodies of a single send and of a batch, and the
numbers they go to."""

from __future__ import annotations

import json
import random
from typing import Any

import phonenumbers

# Every send and every batch's messages go here, unless a batch is spread.
TO = "+14155552671"


def json_body(messages: int, callback_url: str | None = None, *, spread: bool = False) -> bytes:
    """A send (``messages`` 1) or a batch, every message to TO; with ``spread``, a
    batch's messages to numbers spread over the US (the same list in every request), as
    a real batch is: a card's price lookup and the pumping counters then see many
    prefixes, not one."""
    one: dict[str, Any] = {"to": TO, "body": "bench message"}
    if callback_url is not None:
        one["callback_url"] = callback_url
    if messages == 1:
        return json.dumps(one).encode()
    if not spread:
        return json.dumps({"messages": [one] * messages}).encode()
    numbers = us_numbers(messages, random.Random(messages))
    return json.dumps({"messages": [{**one, "to": number} for number in numbers]}).encode()


def us_numbers(count: int, rng: Any) -> list[str]:
    """``count`` valid US numbers (phonenumbers' judgement, as the API's), drawn at
    random from ``rng`` (a random.Random) over the whole numbering plan."""
    numbers: list[str] = []
    while len(numbers) < count:
        number = f"+1{rng.randint(2, 9)}{rng.randint(0, 10**9 - 1):09d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            numbers.append(number)
    return numbers
