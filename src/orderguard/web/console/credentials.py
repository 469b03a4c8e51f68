"""What the console shows of raw provider and endpoint text: everything to an admin; to
every other role, the same text with its credentials taken out.

Raw webhook bodies, the errors stored with them, and the answers recorded for failed
deliveries can carry a PaymentIntent's ``client_secret`` (which lets its holder confirm
the payment from a browser), the shopper page's token (in the ``return_url``), payment
method and card tokens, API keys, webhook secrets and ``Authorization`` headers. A
viewer or an operator needs the shape of these texts to help a shopper, not those values.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orderguard.providers import registry
from orderguard.services.console_users import Role

#: What a hidden credential is replaced with.
HIDDEN = "[hidden]"
#: JSON keys (any nesting, lower case) whose values are credentials.
SECRET_KEYS = frozenset(
    {
        "client_secret", "secret", "token", "status_token", "password", "api_key", "apikey",
        "authorization", "cookie", "set-cookie", "webhook-signature",
        "signature", "access_token", "refresh_token", "private_key", "customer_token",
        *registry.signature_headers(),
    }
)  # fmt: skip
#: Credentials recognisable by their shape, wherever they appear in text (each registered
#: provider's client secrets, API keys, webhook secrets and shopper payment tokens).
_SHAPES = re.compile(registry.hidden_shapes())
#: ``key=value`` in URLs and forms, also percent-encoded inside another URL.
_QUERY = re.compile(
    r"(?i)((?:token|client_secret|secret|key|api_key|password|signature)(?:=|%3D))"
    r"[^&\s\"'%<>]+"
)
#: Keys of ``key: value`` pairs whose values are credentials.
_PAIR_KEYS = (
    "client_secret", "secret", "status_token", "token", "password", "api_key",
    "authorization", "cookie", *sorted(registry.signature_headers()), "webhook-signature",
)  # fmt: skip
#: ``"key": "value"`` and ``key: value`` pairs in text that is not (whole) JSON.
_PAIRS = re.compile(
    r"""(?i)(["']?\b(?:"""
    + "|".join(re.escape(key) for key in _PAIR_KEYS)
    + r""")\b["']?\s*[:=]\s*)"""
    r"""(?:"(?:\\.|[^"\\])*"|'[^']*'|(?:Bearer |Basic )?[^\s,;&"'}]+)"""
)


def shown(role: str, text: str | bytes | None) -> str:
    """``text`` as ``role`` may see it (bytes are read as UTF-8; ``None`` is '')."""
    if text is None:
        return ""
    plain = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return plain if role == Role.ADMIN else hidden(plain)


def hidden(text: str) -> str:
    """``text`` with every credential replaced by :data:`HIDDEN`; JSON stays JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        return _hidden_text(text)
    if not isinstance(document, dict | list):
        return _hidden_text(text)
    return json.dumps(_hidden_json(document), indent=2, ensure_ascii=False)


def _hidden_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: HIDDEN
            if str(key).lower() in SECRET_KEYS and item not in (None, "")
            else _hidden_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hidden_json(item) for item in value]
    if isinstance(value, str):
        return _hidden_text(value)
    return value


def _hidden_text(text: str) -> str:
    text = _PAIRS.sub(lambda m: m.group(1) + HIDDEN, text)
    text = _QUERY.sub(lambda m: m.group(1) + HIDDEN, text)
    return _SHAPES.sub(HIDDEN, text)
