"""``doctor``'s checks of each account of a provider that declares a checkup (Alipay,
WeChat Pay): its keys read and are the keys they claim to be; the provider takes our
signature and its answer verifies (a query for a trade that does not exist); this host's
clock agrees with the gateway's (the HTTP ``Date`` of its answer: every request and answer
carries a signed timestamp); and the notify URL is well formed and reaches orderguard
(a probe is refused for its signature by orderguard itself, not by another server).
Each line names the variable to fix.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from orderguard.config import Settings
from orderguard.observability.checks import Check, Status
from orderguard.providers.base import (
    PaymentProvider,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
)
from orderguard.providers.plugin import Account, Checkup, ProviderPlugin

#: The ``out_trade_no`` asked about: no trade has it, so the answer changes nothing.
PROBE_REF = "orderguard_doctor_probe"
#: Seconds the provider, its gateway and the notify URL may take to answer.
TIMEOUT_S = 10.0
#: A clock this far from the gateway's is a warning; this far, a failure (WeChat Pay
#: refuses a signature five minutes off).
SKEW_WARN, SKEW_FAIL = timedelta(minutes=1), timedelta(minutes=5)
#: The problem type of orderguard's answer to a webhook whose signature does not verify.
REFUSED_SIGNATURE = "/problems/invalid-webhook-signature"
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


async def account_checks(
    plugin: ProviderPlugin,
    account: Account,
    provider: PaymentProvider | None,
    settings: Settings,
    *,
    clock: Clock = _now,
) -> list[Check]:
    """The four checks of one account; ``provider`` is ``None`` when it could not be built."""
    assert plugin.checkup is not None, "only a provider with a checkup is checked so"
    checkup = plugin.checkup(account)
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        return [
            keys_check(account, checkup),
            await credentials_check(plugin, account, provider, checkup),
            await clock_check(account, http, clock),
            await notify_check(account, checkup, settings, http),
        ]


def keys_check(account: Account, checkup: Checkup) -> Check:
    """Every key setting reads and is the key it claims to be."""
    name = f"{account.name} keys"
    if checkup.key_problems:
        variable, problem = checkup.key_problems[0]
        more = len(checkup.key_problems) - 1
        detail = f"{variable} {problem}" + (f" (and {more} more)" if more else "")
        return Check(name, Status.FAIL, detail, f"set {variable} to the right key")
    return Check(name, Status.PASS, "every key reads")


async def credentials_check(
    plugin: ProviderPlugin, account: Account, provider: PaymentProvider | None, checkup: Checkup
) -> Check:
    """The provider takes our signature and its answer verifies."""
    name = f"{account.name} credentials"
    if provider is None:
        return Check(name, Status.SKIP, "not asked: its keys do not read")
    try:
        await asyncio.wait_for(provider.retrieve_payment(PROBE_REF), TIMEOUT_S)
    except ProviderRejected as exc:
        signing = ", ".join(checkup.signing_variables)
        return Check(
            name,
            Status.FAIL,
            f"{plugin.title} refused our request: {exc}",
            f"check {signing}: the private key must be the one registered with {plugin.title}",
        )
    except ProviderOutcomeUnknown as exc:
        verifying = " or ".join(checkup.verifying_variables)
        return Check(
            name,
            Status.FAIL,
            f"{plugin.title}'s answer is not believed: {exc}",
            f"set {verifying} to {plugin.title}'s own key",
        )
    except (ProviderError, TimeoutError) as exc:
        return Check(
            name,
            Status.FAIL,
            f"unreachable: {exc or 'no answer'}",
            f"check {account.url_variable} and the network to {plugin.title}",
        )
    return Check(name, Status.PASS, f"{plugin.title} took our signed query and its answer")


async def clock_check(account: Account, http: httpx.AsyncClient, clock: Clock = _now) -> Check:
    """This host's clock against the gateway's (``Date`` of an answer to a plain GET)."""
    name = f"{account.name} clock"
    started = time.monotonic()
    try:
        answer = await http.get(account.base_url)
        theirs = parsedate_to_datetime(answer.headers["date"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        return Check(name, Status.SKIP, f"no time read from {account.base_url}: {exc!r}")
    half_trip = timedelta(seconds=(time.monotonic() - started) / 2)
    skew = max(abs(clock() - theirs) - half_trip - timedelta(seconds=1), timedelta(0))
    detail = f"{skew.total_seconds():.0f}s between this host and {account.base_url}"
    fix = "synchronise this host's clock (NTP): signed requests carry a timestamp"
    if skew > SKEW_FAIL:
        return Check(name, Status.FAIL, detail, fix)
    if skew > SKEW_WARN:
        return Check(name, Status.WARN, detail, fix)
    return Check(name, Status.PASS, detail)


async def notify_check(
    account: Account, checkup: Checkup, settings: Settings, http: httpx.AsyncClient
) -> Check:
    """The notify URL is absolute (https in production), orderguard's path for this
    account, and orderguard answers there."""
    name, variable = f"{account.name} notify url", checkup.notify_variable
    expected = f"{settings.public_url.rstrip('/')}/v1/webhooks/{account.name}"
    fix = f"set {variable} to {expected} (as the provider reaches it)"
    url = checkup.notify_url
    if not url:
        status = Status.FAIL if settings.production else Status.WARN
        return Check(name, status, f"{variable} is not set: no payment is notified", fix)
    problem = _malformed(url, account.name, https=settings.production)
    if problem:
        return Check(name, Status.FAIL, f"{variable} {problem}", fix)
    return await _reaches_orderguard(name, url, variable, settings, http)


def _malformed(url: str, account_name: str, *, https: bool) -> str | None:
    """What is wrong with ``url`` as a notify URL, if anything."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"is not an absolute http(s) URL ({url})"
    if https and parts.scheme != "https":
        return f"is not https ({url})"
    if parts.query or parts.fragment or not parts.path.endswith(f"/v1/webhooks/{account_name}"):
        return f"is not orderguard's /v1/webhooks/{account_name} ({url})"
    return None


async def _reaches_orderguard(
    name: str, url: str, variable: str, settings: Settings, http: httpx.AsyncClient
) -> Check:
    """A probe posted to ``url`` is refused by orderguard for its signature (redirects
    are not followed: the provider does not follow them either)."""
    try:
        answer = await http.post(
            url,
            content=b"orderguard_doctor=probe",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    except httpx.HTTPError as exc:
        status = Status.FAIL if settings.production else Status.WARN
        return Check(
            name,
            status,
            f"nothing answers at {url}: {exc!r}",
            f"serve orderguard there, or correct {variable}",
        )
    if _problem_type(answer) == REFUSED_SIGNATURE:
        return Check(name, Status.PASS, f"{url} reaches orderguard (a probe was refused)")
    return Check(
        name,
        Status.FAIL,
        f"{url} answers {answer.status_code}, not as orderguard's webhook for this account",
        f"point {variable} at orderguard's /v1/webhooks route for this account",
    )


def _problem_type(answer: httpx.Response) -> str | None:
    if answer.status_code != 400 or "problem+json" not in answer.headers.get("content-type", ""):
        return None
    try:
        found = answer.json()
    except ValueError:
        return None
    return str(found.get("type")) if isinstance(found, dict) else None
