"""Personal data out of logs and error reports (pure functions).

Three nets, applied to every log line (its message, every field, a formatted traceback):
fields named after personal data are replaced whole; e-mail addresses, phone numbers, card
numbers, credentials, secrets in URLs and query values named after personal data are found
by pattern anywhere in text (an access line keeps its path, its ids and its query's keys);
and the exact values of the shopper data the current request carries (names, street, city:
no pattern finds those) are replaced wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from orderguard.providers import registry

#: What a redacted value is replaced with.
REDACTED = "[redacted]"
#: Field names (lower case, any nesting) whose values are personal data or secrets.
PERSONAL_KEYS = frozenset(
    {
        "email", "customer_email", "phone", "customer_phone", "name", "customer_name",
        "shipping_address", "address", "line1", "line2", "ship_line1", "ship_line2", "city",
        "ship_city", "postal_code", "ship_postal_code", "customer", "payment_method",
        "authorization", "cookie", "api_key", "password", "secret", "token", "status_token",
    }
)  # fmt: skip
#: An e-mail address, also URL-encoded (``ana%40example.com``). Its local part holds none of
#: the characters that delimit a URL or its query (``/ ? & = %``) nor quotes: an address in
#: a path or a query value is replaced, never the path or the key before it.
_EMAIL = re.compile(
    r"[\w.+!#$*^~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])", re.UNICODE
)
#: A query parameter named after personal data (``?email=...&phone=%2B351...``): its value.
_QUERY = re.compile(
    r"(?<=[?&])(?P<key>(?:customer_)?(?:email|phone|name)|first_name|last_name|address"
    r"|line1|line2|city|postal_code|zip)=(?P<value>[^&\s\"'#]+)"
)
#: A card number: 13 to 19 digits, alone or in groups, starting as card numbers do (2-6),
#: that pass the Luhn check (:func:`_card`); not inside an id or a longer number.
_CARD = re.compile(r"(?<![\w.-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])")
#: Credentials: a bearer token, orderguard API keys, and each registered provider's
#: (secret and restricted keys, webhook signing secrets, a payment's client secret).
_CREDENTIALS = re.compile(
    r"(?P<bearer>\b[Bb]earer\s+)[\w.~+/=-]+"
    r"|\bog_sk_[\w-]+"
    r"|" + registry.credential_pattern()
)
#: An international number (``+351 912 345 678``) or national digit groups (``912 345 678``).
_PHONE = re.compile(
    r"(?<![\w:./+-])(?:\+\d[\d ().-]{5,}\d|\(?\d{2,5}\)?(?:[ -]\d{2,6}){1,4})(?![\w:./-])"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Payment method ids (``pm_...``) and the shopper page's token in URLs.
_SECRETS = re.compile(
    r"\b(pm_[A-Za-z0-9_]+)|((?:token|client_secret)=)[^&\s\"']+"
    r"|((?:token|client_secret)%3[Dd])[^&\s\"'%]+"  # the same URL inside a URL's query
)


#: Fields whose values are personal, as written in JSON, dict reprs, SQL parameters or
#: ``key=value`` text (quotes may be backslash-escaped when JSON sits inside a string).
_KEYED = re.compile(
    r"""(?P<key>\\*["']?\b(?:customer_email|customer_name|customer_phone|email|name|phone"""
    r"""|ship_line1|ship_line2|line1|line2|ship_city|city|ship_postal_code|postal_code)"""
    r"""\\*["']?\s*[:=]\s*)(?P<q>\\*["'])(?P<value>.*?)(?P=q)"""
)
#: The order snapshot in payment metadata (``og_snap_N``), in JSON, reprs and form bodies;
#: and its shopper lists once decoded.
_SNAPSHOT = re.compile(
    r"""(?P<key>og_snap_\d+(?:\]|%5D)?\\*["']?\s*[:=]\s*)"""
    r"""(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^&\s'",}]+)"""
)
_SNAPSHOT_LISTS = re.compile(r"""(\\*"(?:cust|addr)\\*"\s*:\s*)\[[^\]]*\]""")


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if _DATE.match(text) or digits < (7 if text.startswith("+") else 8):
        return text
    return "[phone]"


def _card(match: re.Match[str]) -> str:
    digits = [int(c) for c in match.group(0) if c.isdigit()]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits))
    )
    return "[card]" if total % 10 == 0 else match.group(0)


def _credential(match: re.Match[str]) -> str:
    return (match.group("bearer") or "") + REDACTED


def _secret(match: re.Match[str]) -> str:
    return "pm_[redacted]" if match.group(1) else (match.group(2) or match.group(3)) + REDACTED


#: Substrings one of which every pattern above needs in order to match: ``_SNAPSHOT``
#: needs ``og_snap_``; ``_SNAPSHOT_LISTS`` a quoted ``cust`` or ``addr``; ``_KEYED`` one of
#: its key names (each contains one of ``name email phone line city postal_code``);
#: ``_EMAIL`` an ``@`` or ``%40``; ``_SECRETS`` ``pm_``, ``token=``, ``secret=`` or their
#: ``%3D`` forms; ``_QUERY`` one of its keys (``name email phone line city postal_code``,
#: ``address``, ``zip``); ``_CREDENTIALS`` ``earer``, ``og_sk_`` or one of the providers'
#: credential markers; ``_CARD`` thirteen digits (``_MANY_DIGITS``).
_MARKERS = ("og_snap_", '"cust', '"addr', "name", "email", "phone", "line", "city",
            "postal_code", "address", "zip", "@", "%40", "pm_", "token=", "secret=",
            "token%3", "secret%3", "earer", "og_sk_",
            *registry.credential_markers())  # fmt: skip
#: What ``_PHONE`` needs before ``_phone`` replaces anything: seven digits or more in one
#: run of the characters a phone number is written with.
_MANY_DIGITS = re.compile(r"\d(?:[ ().+-]*\d){6}")


def may_hold_personal_data(text: str, known: Iterable[str] = ()) -> bool:
    """False only when :func:`redact_text` would return ``text`` unchanged: none of its
    patterns can match and no ``known`` value occurs (a cheap test, run first)."""
    for needle in (*_MARKERS, *known):  # a loop of ``in``: faster here than any() or a regex
        if needle in text:
            return True
    return _MANY_DIGITS.search(text) is not None


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with e-mail addresses, phone numbers, card numbers, credentials, payment
    method ids, URL tokens, personal query values and every ``known`` value replaced; paths,
    ids and query keys are kept."""
    known = tuple(known)
    if not may_hold_personal_data(text, known):
        return text  # most log text: an access line, a timestamp, an id
    return redact_patterns(text, known)


def redact_patterns(text: str, known: Iterable[str] = ()) -> str:
    """:func:`redact_text` without its quick test: every pattern run over ``text``."""
    for value in sorted(known, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = _SNAPSHOT.sub(lambda m: m.group("key") + REDACTED, text)
    text = _SNAPSHOT_LISTS.sub(lambda m: m.group(1) + f'"{REDACTED}"', text)
    text = _KEYED.sub(lambda m: m.group("key") + m.group("q") + REDACTED + m.group("q"), text)
    text = _QUERY.sub(lambda m: m.group("key") + "=" + REDACTED, text)
    text = _CREDENTIALS.sub(_credential, text)
    text = _EMAIL.sub("[email]", text)
    text = _SECRETS.sub(_secret, text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def redact_value(value: Any, known: Iterable[str] = ()) -> Any:
    """A log field's value with personal data removed, at any nesting."""
    known = tuple(known)
    if isinstance(value, str):
        return redact_text(value, known)
    if isinstance(value, Mapping):
        return {k: redact_field(str(k), v, known) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, known) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(repr(value), known)


def redact_field(key: str, value: Any, known: Iterable[str] = ()) -> Any:
    """One named field: personal by name (replaced whole) or redacted by content."""
    if key.lower() in PERSONAL_KEYS and value not in (None, ""):
        return REDACTED
    return redact_value(value, known)


def redact_messages(detail: str, messages: list[str]) -> tuple[str, list[str]]:
    """An error report's text (a problem's detail and field messages), redacted."""
    return redact_text(detail), [redact_text(m) for m in messages]
