"""Reading requests defensively: content type, size, JSON, Idempotency-Key (the caller's
language is ``catalog.locale``, shared with the pages)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from orderguard.api.problems import ProblemError

#: The largest request body accepted, in bytes.
MAX_BODY_BYTES = 64 * 1024
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
Model = TypeVar("Model", bound=BaseModel)


def idempotency_key(value: str | None) -> str:
    """The request's Idempotency-Key; 400 when missing or malformed."""
    if value is None:
        raise ProblemError(
            400,
            "idempotency-key-missing",
            "Idempotency-Key required",
            "Send an Idempotency-Key header (1-255 visible ASCII characters) so that a "
            "retry of this request can never create a second order.",
        )
    if not _KEY.match(value):
        raise ProblemError(
            400,
            "idempotency-key-malformed",
            "Malformed Idempotency-Key",
            "The Idempotency-Key must be 1-255 visible ASCII characters (no spaces).",
        )
    return value


async def json_body(request: Request, *, optional: bool = False) -> Any:
    """The parsed JSON body: 415 for another content type, 413 over 64 KiB, 400 if broken;
    with ``optional``, an empty body is ``{}``."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as application/json, not {media_type or 'no content type'}.",
        )
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    if optional and not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(
            400, "malformed-json", "Malformed JSON", f"The body is not valid JSON: {exc}"
        ) from None


def validated(model: type[Model], data: Any, context: dict[str, Any]) -> Model:
    """``data`` as ``model``; 422 naming every invalid field."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_problem(
            [(err["loc"], _message(err["msg"])) for err in exc.errors()]
        ) from None


def validation_problem(errors: list[tuple[Any, str]]) -> ProblemError:
    """A 422 problem listing ``(location, message)`` pairs."""
    count = len(errors)
    return ProblemError(
        422,
        "validation-error",
        "Invalid request",
        f"{count} invalid value{'s' if count != 1 else ''}; see errors.",
        errors=[(tuple(loc), msg) for loc, msg in errors],
    )


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _too_large() -> ProblemError:
    return ProblemError(
        413,
        "payload-too-large",
        "Body too large",
        f"The body must be at most {MAX_BODY_BYTES} bytes.",
    )
