"""``doctor``'s checks that look outside the database: payment providers, the webhook
endpoint as the provider sees it, and the SMTP and NATS servers when configured."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from orderguard.config import Settings
from orderguard.observability.checks import Check, Status
from orderguard.production import is_known_default
from orderguard.providers import registry
from orderguard.providers.base import PaymentProvider, ProviderError, ProviderRejected
from orderguard.providers.plugin import Account

#: Seconds a provider may take to answer the read-only call.
PROVIDER_TIMEOUT_S = 10.0


def no_provider(settings: Settings) -> Check:
    """No provider's key: the built-in sandbox takes the charges."""
    key = registry.main_account(settings).key_variable
    return Check(
        "provider",
        Status.WARN,
        f"no {key}: charges go to the built-in sandbox",
        f"set {key} to take real payments",
    )


async def provider_check(provider: PaymentProvider, settings: Settings) -> Check:
    """The provider answers a read-only call (the last minute's charges) with our key."""
    name = f"provider {provider.name}"
    account = _account(settings, provider.name)
    now = datetime.now(UTC)
    try:
        await asyncio.wait_for(
            provider.list_successful_charges(now - timedelta(minutes=1), now), PROVIDER_TIMEOUT_S
        )
    except ProviderRejected as exc:
        return Check(
            name,
            Status.FAIL,
            f"credentials refused: {exc}",
            f"set a valid secret key in {account.key_variable}",
        )
    except (ProviderError, TimeoutError) as exc:
        return Check(
            name,
            Status.FAIL,
            f"unreachable: {exc or 'no answer'}",
            f"check {account.url_variable} and the network to the provider",
        )
    return Check(name, Status.PASS, "reachable, credentials accepted (read-only call)")


def _account(settings: Settings, name: str) -> Account:
    """The account named ``name`` (the first main account when none is)."""
    named = [a for _, a in registry.accounts(settings) if a.name == name]
    return named[0] if named else registry.main_account(settings)


def webhook_secret_check(settings: Settings) -> Check:
    """Each configured account verifies webhooks with its own, non-public secret."""
    fix = "set {} to the signing secret (whsec_...) of that account's webhook endpoint"
    for _, account in registry.accounts(settings):
        name = account.secret_variable
        key, secret = account.api_key, account.webhook_secret
        if key and not secret:
            return Check(
                "webhook secret",
                Status.FAIL,
                f"{name} is not set: webhooks are refused",
                fix.format(name),
            )
        if key and secret and is_known_default(secret):
            return Check(
                "webhook secret", Status.FAIL, f"{name} is a public default", fix.format(name)
            )
    if not registry.has_real_account(settings):
        return Check("webhook secret", Status.PASS, "the in-process sandbox signs with its own")
    return Check("webhook secret", Status.PASS, "configured for every account")


async def webhook_url_check(settings: Settings, providers: Sequence[str]) -> Check:
    """Whether the provider can reach the webhook URL (a provider on the internet cannot
    reach a private or plain-http address) and whether the service answers there."""
    public = settings.public_url.rstrip("/")
    url = f"{public}/v1/webhooks/{(list(providers) or ['sandbox'])[0]}"
    main = registry.main_account(settings)
    if is_public(main.base_url) and main.api_key:
        if not is_public(public) or not public.startswith("https://"):
            return Check(
                "webhook url",
                Status.FAIL,
                f"{url} cannot be reached from the provider",
                "set ORDERGUARD_PUBLIC_URL to the service's public https address",
            )
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            answer = await client.get(f"{public}/healthz")
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        return Check(
            "webhook url",
            Status.WARN,
            f"nothing answers at {public}: {exc!r}",
            "start `orderguard serve` there, or correct ORDERGUARD_PUBLIC_URL",
        )
    return Check("webhook url", Status.PASS, f"{url} (the service answers at {public})")


async def greets(name: str, url: str | None, default_port: int, greeting: bytes) -> Check:
    """Whether a server at ``url`` accepts a connection and greets as ``greeting``."""
    if not url:
        return Check(name, Status.SKIP, "not configured")
    parts = urlsplit(url if "://" in url else f"//{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    fix = f"check that the {name.upper()} server at {host}:{port} is running and reachable"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
        try:
            first = await asyncio.wait_for(reader.readline(), 5.0)
        finally:
            writer.close()
    except (OSError, TimeoutError) as exc:
        return Check(name, Status.FAIL, f"{host}:{port} unreachable: {exc or 'timed out'}", fix)
    if not first.startswith(greeting):
        return Check(name, Status.FAIL, f"{host}:{port} does not speak {name.upper()}", fix)
    return Check(name, Status.PASS, f"{host}:{port} answers")


def is_public(url: str) -> bool:
    """Whether ``url``'s host is on the internet (not loopback, private or a bare name)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or "." not in host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (address.is_private or address.is_loopback or address.is_link_local)
