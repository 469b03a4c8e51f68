"""Where the links orderguard makes point when no public URL is configured.

Status links (API answers, e-mails, the console), the 3-D Secure return address and the
in-process sandbox's webhook address are all made from ``Settings.public_url``. When the
operator has not set it, ``serve`` points them at the address it binds, so that
``orderguard serve --port 9000`` never hands shoppers links to port 8000.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from urllib.parse import urlsplit

from orderguard.config import Settings, given

#: Bind addresses that mean "every interface": a link to them reaches this machine only
#: through its loopback address.
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def bound_url(host: str, port: int) -> str:
    """The ``http://`` base URL of a server bound to ``host`` and ``port``."""
    host = _ANY.get(host, host)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"
    return f"http://[{literal}]:{port}" if literal.version == 6 else f"http://{literal}:{port}"


def linked_to_bind(settings: Settings, host: str, port: int) -> Settings:
    """``settings`` with links to ``host:port`` unless a public URL was configured."""
    if given("public_url"):
        return settings
    return replace(settings, public_url=bound_url(host, port))


def disagreement(settings: Settings, host: str, port: int) -> str | None:
    """Why a configured loopback public URL cannot reach a server bound to ``host:port``
    (``None`` when it can, or when the public URL names another host: a proxy's)."""
    public = urlsplit(settings.public_url)
    name = public.hostname or ""
    if name not in {"localhost", "127.0.0.1", "::1"} and not name.startswith("127."):
        return None
    if public.scheme != "http":
        return None  # an https loopback URL is a TLS proxy's on this host
    if (public.port or 80) == port:
        return None
    return (
        f"ORDERGUARD_PUBLIC_URL is {settings.public_url} but this server listens on port "
        f"{port}: shoppers' status links would not reach it; correct ORDERGUARD_PUBLIC_URL "
        f"(or unset it: links then point at {bound_url(host, port)})"
    )
