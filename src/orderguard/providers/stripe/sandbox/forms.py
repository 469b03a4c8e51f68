"""Stripe's form encoding (``metadata[order_id]=...``, ``created[gte]=...``) as nested dicts."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def _path(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        return [key]
    return [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]


def _put(target: dict[str, Any], path: list[str], value: str) -> None:
    *parents, last = path
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    if last == "":
        node.setdefault("", []).append(value)
    else:
        node[last] = value


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if set(node) == {""}:
        return node[""]
    return {key: _lists(value) for key, value in node.items()}


def parse_form(encoded: str) -> dict[str, Any]:
    """Decode ``a[b]=1&c=2`` into ``{"a": {"b": "1"}, "c": "2"}`` (``x[]`` gives lists)."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        _put(result, _path(key), value)
    return {key: _lists(value) for key, value in result.items()}
