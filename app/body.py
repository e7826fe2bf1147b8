"""Strict JSON request bodies.

Litestar's own decoding converts loosely ("5" becomes 5) and reports every failure as 400
without the field's path. This DTO decodes with msgspec in strict mode instead, so that
malformed JSON is a 400, a well-formed body that breaks the schema is a 422 naming the
field (``messages[3].to``), and the OpenAPI document still describes the body type.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, Generic, TypeVar

import msgspec
from litestar.dto import AbstractDTO
from litestar.dto.data_structures import DTOFieldDefinition
from litestar.typing import FieldDefinition

from core.errors import FieldError, InvalidRequest, MalformedRequest

T = TypeVar("T")
_AT = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$")
# Errors about a named key of an object: the field at fault is that key, not the object.
_NAMED = re.compile(r"^Object (?:contains unknown|missing required) field `(?P<name>[^`]*)`$")


def validation_error(exc: msgspec.ValidationError, prefix: str = "") -> InvalidRequest:
    """Turn msgspec's "Expected `str`, got `int` - at `$.to`" into a field error."""
    text = str(exc)
    match = _AT.match(text)
    detail, path = (match["message"], match["path"]) if match else (text, "")
    named = _NAMED.match(detail)
    if named is not None:
        path = f"{path}.{named['name']}"
    field = (prefix + path).lstrip(".") or "body"
    return InvalidRequest("The request body is not valid.", [FieldError(field, detail)])


TOO_DEEP = "The request body is not valid JSON: it is nested too deeply."


def require_utf8(raw: bytes) -> None:
    """JSON text is UTF-8 (RFC 8259). Checked before any decoding, because how a bad
    sequence inside a string surfaces differs between msgspec releases (0.23 reports it
    as a schema error of the field, earlier ones as a decode error)."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRequest(NOT_UTF8) from None


NOT_UTF8 = "The request body is not valid JSON: it is not UTF-8."


def decode(raw: bytes, model: type[T]) -> T:
    require_utf8(raw)
    try:
        return msgspec.json.decode(raw, type=model, strict=True)
    except msgspec.ValidationError as exc:
        # The typed decoder stops at the first schema error, before it has seen the
        # whole text: `{"x": 1,}` is "unknown field x". Malformed JSON is a 400 whatever
        # else is wrong with it.
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError as malformed:
            raise MalformedRequest(f"The request body is not valid JSON: {malformed}") from None
        except RecursionError:
            pass  # too deep to read whole; the schema error found first stands
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        # Nesting deeper than the interpreter's recursion limit (about 1,000 levels).
        raise MalformedRequest(TOO_DEEP) from None


class StrictBody(AbstractDTO[T], Generic[T]):
    """``dto=StrictBody[Model]`` on a handler whose ``data`` is ``Model``."""

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        return None

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        return schema_creator.for_field_definition(field_definition)

    def decode_bytes(self, value: bytes) -> Any:
        return decode(value, self.model_type)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        return msgspec.convert(value, self.model_type, strict=True)

    def data_to_encodable_type(self, data: Any) -> Any:
        return data
