"""A provider's daily bill, downloaded: the files, and what can go wrong getting them.

Alipay and WeChat Pay publish each day's trades as a bill the merchant downloads the next
morning (China time): the adapters' ``download_bill(day)`` asks for the day's download
address with a signed call, follows it only on the provider's own host, checks what comes
back (its hash, its archive) and returns the files as the provider wrote them, for
``orderguard reconcile --fetch`` to read with the settlement readers.

Every failure is a :class:`BillError` whose type says what happened; nothing of a bill that
failed a check is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta, timezone
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

if TYPE_CHECKING:  # httpx is imported when a bill is downloaded, not with the CLI
    import httpx

#: The time zone of the providers' bill days (China has one, without daylight saving).
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
#: The most a downloaded bill may weigh (a day's bill is far smaller).
MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BillFile:
    """One file of a bill: its name as the provider gives it (no directory) and its bytes."""

    name: str
    content: bytes


class BillError(Exception):
    """The bill could not be had; the message says why."""

    #: The catalog key (``report.<kind>``) of the heading a person reads.
    kind = "fetch_failed"


class BillNotReady(BillError):
    """The day is not over, or its bill is still being made: ask again later."""

    kind = "fetch_not_ready"


class NoBill(BillError):
    """The provider has no bill for the day (no trades that day)."""

    kind = "fetch_no_bill"


class BillRefused(BillError):
    """What came back is not believed (a signature, a hash, an address, an archive)."""

    kind = "fetch_refused"


class BillUnavailable(BillError):
    """The provider could not be reached or failed; nothing was downloaded."""

    kind = "fetch_unavailable"


@runtime_checkable
class BillSource(Protocol):
    """An adapter that downloads its provider's daily bill."""

    async def download_bill(self, day: date) -> list[BillFile]: ...


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def check_download_url(url: str, *, base_url: str, also: frozenset[str] = frozenset()) -> str:
    """``url`` when it may be followed: on ``base_url``'s scheme, host and port (or, same
    scheme, on one of the hosts ``also`` names), with no credentials in it; else
    :class:`BillRefused`. The address comes from the network: followed anywhere, it would
    let whoever answers make orderguard fetch (and sign requests for) any address."""
    import httpx

    try:
        httpx.URL(url)
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
            raise httpx.InvalidURL("a control character or space")
    except httpx.InvalidURL as exc:
        raise BillRefused(
            f"the bill's download address is not a URL ({exc}): not followed"
        ) from exc
    scheme, host, port = _origin(url)
    base = _origin(base_url)
    parts = urlsplit(url)
    same = (scheme, host, port) == base
    allowed = same or (scheme == base[0] == "https" and host in also and port == 443)
    if not allowed or not host or parts.username or parts.password:
        raise BillRefused(
            f"the bill's download address {host or url!r} is not the provider's host "
            f"{base[1]!r}: not followed"
        )
    return url


async def download(http: httpx.AsyncClient, request: httpx.Request, *, what: str) -> bytes:
    """The body of ``request``'s 200 answer, read up to :data:`MAX_BYTES` (never through a
    redirect); :class:`BillUnavailable` or :class:`BillRefused` otherwise."""
    import httpx

    try:
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code != 200:
                raise BillUnavailable(f"{what} answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise BillRefused(f"{what} is larger than {MAX_BYTES} bytes: not read")
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        raise BillUnavailable(f"{what}: {exc.__class__.__name__}") from exc
    return bytes(body)
