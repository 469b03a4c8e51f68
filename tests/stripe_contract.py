"""Checks JSON bodies against the vendored subset of Stripe's OpenAPI description.

The subset (``tests/fixtures/stripe_openapi/stripe_subset.json``) is OpenAPI 3.0; it is turned
into JSON Schema (2020-12) once: ``nullable: true`` becomes a ``null`` alternative (added to
``type``, ``enum`` or ``anyOf``), and ``format`` (Stripe's ``unix-time``) is dropped. Then
``jsonschema_rs`` checks required fields, types, enums, nullability and the ``anyOf`` of
expandable fields (an id string or the whole object).

:func:`check_record` checks one line of the sandbox's contract log
(:mod:`orderguard.providers.stripe.sandbox.recording`); each problem names the object, the field
and what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs

SUBSET = Path(__file__).resolve().parent / "fixtures" / "stripe_openapi" / "stripe_subset.json"
#: The object kinds whose events the sandbox sends, by the event type's first word.
EVENT_OBJECTS = {"payment_intent": "payment_intent", "charge": "charge", "refund": "refund"}
#: Status the sandbox gives when the client hung up before sending its body: no answer at all.
HUNG_UP = 499
#: Status of an answer to a URL the API does not have.
NOT_FOUND = 404
#: How much of a value a problem quotes.
QUOTE = 200


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a body differs from Stripe's description."""

    #: What was checked, e.g. ``payment_intent pi_123 in POST /v1/payment_intents -> 200``.
    what: str
    #: The field, dotted (``next_action.redirect_to_url.url``); ``(top level)`` for the object.
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.what}: field {self.field}: {self.message}"


def openapi_to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` made explicit, ``format`` dropped."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: value if key == "enum" else openapi_to_json_schema(value)
        for key, value in node.items()
        if key not in {"nullable", "format"}
    }
    if node.get("nullable") is True:
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        elif "enum" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def subset() -> dict[str, Any]:
    """The vendored subset, as JSON Schema; a resource's ``x-always-sent`` fields required."""
    converted: dict[str, Any] = openapi_to_json_schema(json.loads(SUBSET.read_text()))
    for schema in converted["components"]["schemas"].values():
        always = schema.get("x-always-sent", [])
        schema["required"] = sorted({*schema.get("required", []), *always})
    return converted


@cache
def _described_required() -> frozenset[str]:
    """``schema.field`` for every field Stripe's description itself marks required."""
    raw = json.loads(SUBSET.read_text())["components"]["schemas"]
    return frozenset(f"{name}.{f}" for name, s in raw.items() for f in s.get("required", []))


@cache
def _validator(pointer: str) -> jsonschema_rs.Validator:
    root = {**subset(), "$ref": pointer}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=False)


def _escape(part: str) -> str:
    """``part`` as one segment of a JSON pointer inside a URI fragment."""
    return quote(part.replace("~", "~0").replace("/", "~1"), safe="~")


def schema_pointer(name: str) -> str:
    """The JSON pointer of the component schema ``name``."""
    if name not in subset()["components"]["schemas"]:
        raise KeyError(f"schema {name!r} is not in the vendored subset")
    return f"#/components/schemas/{_escape(name)}"


def _operation(method: str, path: str) -> str | None:
    """The subset's path template for a concrete ``path`` served with ``method``."""
    templates = sorted(subset()["paths"], key=lambda t: (t.count("{"), t))
    for template in templates:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in subset()["paths"][template]:
            return str(template)
    return None


def _flatten(error: jsonschema_rs.ValidationError) -> list[jsonschema_rs.ValidationError]:
    """The errors that explain ``error``: for an ``anyOf`` (an expandable or nullable field),
    those of the one alternative whose type the value has, so a broken expanded object
    reports its own field rather than "not valid under any of the schemas"."""
    context = getattr(error.kind, "context", None)
    if not isinstance(error.kind, jsonschema_rs.ValidationErrorKind.AnyOf) or not context:
        return [error]
    depth = len(error.instance_path)
    typed = [
        alternative
        for alternative in context
        if not any(
            isinstance(e.kind, jsonschema_rs.ValidationErrorKind.Type)
            and len(e.instance_path) == depth
            for e in alternative
        )
    ]
    if len(typed) != 1:
        return [error]
    return [leaf for e in typed[0] for leaf in _flatten(e)]


def _field(path: list[str | int]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _quote(text: str) -> str:
    return text if len(text) <= QUOTE else text[:QUOTE] + "..."


def _problem(what: str, error: jsonschema_rs.ValidationError) -> Problem:
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
        name = str(error.kind.property)
        field = _field([*error.instance_path, name])
        schema = error.schema_path[2] if len(error.schema_path) > 2 else ""
        why = (
            "Stripe's description marks it required"
            if f"{schema}.{name}" in _described_required()
            else "Stripe always sends it, null when empty"
        )
        return Problem(what, field, f"missing ({why})")
    return Problem(what, _field(error.instance_path), _quote(error.message))


def check(pointer: str, value: Any, what: str) -> list[Problem]:
    """Problems of ``value`` against the schema at ``pointer``."""
    messages: dict[str, list[str]] = {}
    for error in _validator(pointer).iter_errors(value):
        for leaf in _flatten(error):
            problem = _problem(what, leaf)
            said = messages.setdefault(problem.field, [])
            if problem.message not in said:
                said.append(problem.message)
    return [Problem(what, field, "; ".join(said)) for field, said in sorted(messages.items())]


def check_object(schema: str, value: Any, what: str | None = None) -> list[Problem]:
    """Problems of ``value`` as the component schema ``schema`` (e.g. ``payment_intent``)."""
    return check(schema_pointer(schema), value, what or _describe(schema, value))


def _describe(schema: str, value: Any) -> str:
    ident = value.get("id") if isinstance(value, dict) else None
    return f"{schema} {ident}" if ident else schema


def check_response(method: str, path: str, status: int, body: Any) -> list[Problem]:
    """Problems of an API answer: the operation's 200 schema for 2xx, its error schema else."""
    call = f"{method.upper()} {path} -> {status}"
    template = _operation(method, path)
    if template is None and status == NOT_FOUND:  # Stripe's 404 for a URL it does not have
        return check_object("error", body, f"error in {call}")
    if template is None:
        return [Problem(call, "(top level)", "no such operation in the vendored Stripe subset")]
    if status == HUNG_UP and body is None:
        return []  # the client hung up: nothing was answered
    responses = subset()["paths"][template][method.lower()]["responses"]
    code = "200" if 200 <= status < 300 else "default"
    parts = ["#/paths", _escape(template), method.lower(), "responses", code, "content"]
    pointer = "/".join([*parts, _escape("application/json"), "schema"])
    if code not in responses:
        return [Problem(call, "(top level)", f"the operation has no {code} answer")]
    if body is None or (isinstance(body, dict) and "_not_json" in body):
        return [Problem(call, "(top level)", f"the body is not JSON: {body!r:.{QUOTE}}")]
    kind = body.get("object") if isinstance(body, dict) else None
    what = f"{kind or 'error'} {body.get('id', '')}".rstrip() if isinstance(body, dict) else "body"
    return check(pointer, body, f"{what} in {call}")


def check_event(event: Any) -> list[Problem]:
    """Problems of a webhook body: the event, its type, and the object it carries."""
    what = _describe("event", event)
    problems = check_object("event", event, what)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return problems
    kind = event["type"]
    if kind not in subset()["x-event-types"]:
        problems.append(Problem(what, "type", f"{kind!r} is not an event type Stripe sends"))
    expected = (
        "refund" if kind.startswith("charge.refund.") else EVENT_OBJECTS.get(kind.split(".")[0])
    )
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    if expected is None or not isinstance(obj, dict):
        return problems
    if obj.get("object") != expected:
        problems.append(
            Problem(
                what,
                "data.object.object",
                f"a {kind} event carries a {expected}, not {obj.get('object')!r}",
            )
        )
        return problems
    inner = f"{expected} {obj.get('id', '')} in {what} ({kind})"
    return problems + [
        Problem(
            p.what,
            f"data.object.{p.field}" if p.field != "(top level)" else "data.object",
            p.message,
        )
        for p in check_object(expected, obj, inner)
    ]


def check_record(record: dict[str, Any]) -> list[Problem]:
    """Problems of one line of the sandbox's contract log."""
    if record.get("kind") == "webhook":
        return check_event(record.get("body"))
    if record.get("kind") == "response":
        return check_response(
            str(record.get("method")),
            str(record.get("path")),
            int(record.get("status") or 0),
            record.get("body"),
        )
    return [Problem("contract log line", "kind", f"unknown record kind {record.get('kind')!r}")]
