"""What the console shows of raw provider and endpoint text: everything to an admin; to
every other role, the same text with its credentials taken out.

Raw webhook bodies, the errors stored with them, and the answers recorded for failed
deliveries can carry a PaymentIntent's ``client_secret`` (which lets its holder confirm
the payment from a browser), the shopper page's token (in the ``return_url``), payment
method and card tokens, API keys, webhook secrets and ``Authorization`` headers. A
viewer or an operator needs the shape of these texts to help a shopper, not those values.

The providers' own credential shapes and signature headers are not read here: the
composition root gives them (from the provider registry) when it builds
:class:`Credentials` for the console.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from orderguard.services.console_users import Role

#: What a hidden credential is replaced with.
HIDDEN = "[hidden]"
#: JSON keys (any nesting, lower case) whose values are credentials, whatever the provider.
SECRET_KEYS = frozenset(
    {
        "client_secret", "secret", "token", "status_token", "password", "api_key", "apikey",
        "authorization", "cookie", "set-cookie", "webhook-signature",
        "signature", "access_token", "refresh_token", "private_key", "customer_token",
    }
)  # fmt: skip
#: ``key=value`` in URLs and forms, also percent-encoded inside another URL.
_QUERY = re.compile(
    r"(?i)((?:token|client_secret|secret|key|api_key|password|signature)(?:=|%3D))"
    r"[^&\s\"'%<>]+"
)
#: Keys of ``key: value`` pairs whose values are credentials (the signature headers go
#: between the first ones and ``webhook-signature``).
_PAIR_KEYS = ("client_secret", "secret", "status_token", "token", "password", "api_key",
              "authorization", "cookie")  # fmt: skip
#: A pattern that matches nothing: no provider gave a credential shape.
_NOTHING = "(?!)"


class Credentials:
    """Hides credentials from raw text: the generic ones (keys, pairs, query values) and,
    given at wiring, each provider's ``signature_headers`` and credential ``shapes`` (one
    regular expression)."""

    def __init__(self, signature_headers: Iterable[str] = (), shapes: str = "") -> None:
        headers = sorted(h.lower() for h in signature_headers)
        self.secret_keys = SECRET_KEYS | set(headers)
        self._shapes = re.compile(shapes or _NOTHING)
        keys = (*_PAIR_KEYS, *headers, "webhook-signature")
        #: ``"key": "value"`` and ``key: value`` pairs in text that is not (whole) JSON.
        self._pairs = re.compile(
            r"""(?i)(["']?\b(?:"""
            + "|".join(re.escape(key) for key in keys)
            + r""")\b["']?\s*[:=]\s*)"""
            r"""(?:"(?:\\.|[^"\\])*"|'[^']*'|(?:Bearer |Basic )?[^\s,;&"'}]+)"""
        )

    def shown(self, role: str, text: str | bytes | None) -> str:
        """``text`` as ``role`` may see it (bytes are read as UTF-8; ``None`` is '')."""
        if text is None:
            return ""
        plain = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return plain if role == Role.ADMIN else self.hidden(plain)

    def hidden(self, text: str) -> str:
        """``text`` with every credential replaced by :data:`HIDDEN`; JSON stays JSON."""
        try:
            document = json.loads(text)
        except ValueError:
            return self._hidden_text(text)
        if not isinstance(document, dict | list):
            return self._hidden_text(text)
        return json.dumps(self._hidden_json(document), indent=2, ensure_ascii=False)

    def _hidden_json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: HIDDEN
                if str(key).lower() in self.secret_keys and item not in (None, "")
                else self._hidden_json(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._hidden_json(item) for item in value]
        if isinstance(value, str):
            return self._hidden_text(value)
        return value

    def _hidden_text(self, text: str) -> str:
        text = self._pairs.sub(lambda m: m.group(1) + HIDDEN, text)
        text = _QUERY.sub(lambda m: m.group(1) + HIDDEN, text)
        return self._shapes.sub(HIDDEN, text)
