"""Where merchant webhooks may go: public http(s) addresses only, unless the operator says so.

A merchant endpoint URL is checked when it is added and again at every delivery, right
before connecting: its host is resolved, *every* address it resolves to must be public,
and the request then goes to the address that was checked (the name stays in ``Host``
and in TLS's server name), so a name that resolves differently a second later (DNS
rebinding) cannot slip through. Refused: loopback, private, link-local (the cloud
metadata service at 169.254.169.254), shared (100.64/10), multicast, reserved and
unspecified addresses, in IPv4, IPv6 and IPv4 inside IPv6 (mapped, 6to4, Teredo,
NAT64), and numeric hosts in any form the resolver accepts (``2130706433``,
``0x7f.1``, ``0177.0.0.1``). URLs with a user name or password are refused; only
``http`` and ``https``. An endpoint added with ``--allow-private`` may reach private
addresses (a receiver on the same host or network); the scheme and userinfo rules hold.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Resolves a host name (and port) to IP addresses, as text; injected at wiring in tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]
#: URL schemes a merchant endpoint may use.
SCHEMES = frozenset({"http", "https"})
#: Addresses of cloud metadata services (AWS, GCP and Azure; AWS over IPv6; Alibaba).
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
#: The name of each kind of non-public address, tested in this order.
_KINDS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda a: a.is_unspecified),
    ("loopback", lambda a: a.is_loopback),
    ("link-local", lambda a: a.is_link_local),
    ("multicast", lambda a: a.is_multicast),
    ("reserved", lambda a: a.is_reserved),
    ("private", lambda a: a.is_private),
    ("not public", lambda a: not a.is_global),
)


class EgressRefused(Exception):
    """The URL may not receive webhooks (the message says why)."""


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint URL taken apart: what to resolve and what to tell the server."""

    url: httpx.URL
    #: The host as sent on the wire (IDNA-encoded; an IP literal without brackets).
    host: str
    port: int


def target_of(url: str) -> Target:
    """``url`` when it is ``http(s)://host[:port]/...`` without user name or password."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise EgressRefused(f"{url!r} is not a URL: {exc}") from None
    if parsed.scheme not in SCHEMES:
        raise EgressRefused(f"{url!r}: only http:// and https:// URLs receive webhooks")
    if parsed.userinfo:
        raise EgressRefused(
            "a webhook URL may not carry a user name or password (user:pass@host); "
            "the endpoint's signing secret authenticates each delivery"
        )
    if not parsed.raw_host:
        raise EgressRefused(f"{url!r} has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(parsed, parsed.raw_host.decode("ascii"), port)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form the system's resolver reads as one
    (``::1``, ``127.0.0.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if any(address in prefix for prefix in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks (``loopback``, ``private``, ...); None when
    it is a public address."""
    if address in METADATA:
        return "cloud metadata"
    inner = embedded_ipv4(address)
    why = None if inner is None else refusal(inner)
    if why is not None:
        return f"carries {inner}: {why}"
    return next((kind for kind, test in _KINDS if test(address)), None)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for ``host`` (TCP)."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


async def checked_address(target: Target, *, resolver: Resolver, allow_private: bool) -> IPAddress:
    """The address to connect to for ``target``: every address its host resolves to is
    checked, and the first is used. Raises :class:`EgressRefused` if any is not public
    (unless ``allow_private``) or the host does not resolve."""
    literal = literal_address(target.host)
    if literal is not None:
        found = [literal]
    else:
        try:
            answers = await resolver(target.host, target.port)
            found = [ipaddress.ip_address(a.split("%")[0]) for a in answers]
        except (OSError, ValueError) as exc:
            raise EgressRefused(f"cannot resolve {target.host}: {exc}") from None
    if not found:
        raise EgressRefused(f"{target.host} resolves to no address")
    if not allow_private:
        for address in found:
            why = refusal(address)
            if why is not None:
                raise EgressRefused(
                    f"{_spelt(target.host, address, literal)} ({why}); webhooks go to public "
                    "addresses only (add the endpoint with --allow-private for a receiver "
                    "on your own network)"
                )
    return found[0]


def _spelt(host: str, address: IPAddress, literal: IPAddress | None) -> str:
    """How the refused address is named: itself, or the host and what it is or resolves to."""
    if host == str(address):
        return host
    return f"{host} {'is' if literal is not None else 'resolves to'} {address}"


async def check_endpoint_url(url: str, *, allow_private: bool, resolver: Resolver) -> None:
    """Refuse ``url`` as a merchant endpoint (:class:`EgressRefused`) unless it may receive
    webhooks now."""
    await checked_address(target_of(url), resolver=resolver, allow_private=allow_private)


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    """A request to a checked address that names the endpoint's host to the server."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, object]


def pinned(target: Target, address: IPAddress) -> PinnedRequest:
    """Connect to ``address``; ``Host`` and TLS server name (and certificate check) stay the
    endpoint's host."""
    extensions: dict[str, object] = {}
    if target.url.scheme == "https" and literal_address(target.host) is None:
        extensions["sni_hostname"] = target.host
    return PinnedRequest(
        target.url.copy_with(host=str(address)),
        {"host": target.url.netloc.decode("ascii")},
        extensions,
    )
