"""Every provider sandbox orderguard can run (the lab), and what its callers ask of it.

Kept apart from :mod:`.registry`: what starts or serves a sandbox (development's start with
no key set, ``orderguard sandbox-provider``, the demo) reads it here, and production code,
which reads only the registry, never imports a sandbox. Adding a provider with a sandbox is
one line in :data:`LABS` (see ``docs/adding-a-provider.md``).
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from typing import Any

from orderguard.providers import registry
from orderguard.providers.alipay.lab import LAB as ALIPAY
from orderguard.providers.lab import ProviderLab
from orderguard.providers.plugin import Account
from orderguard.providers.settings import ProviderSettings
from orderguard.providers.stripe.lab import LAB as STRIPE
from orderguard.providers.wechatpay.lab import LAB as WECHATPAY

#: The provider sandboxes; the first runs in development and in the demo.
LABS: tuple[ProviderLab, ...] = (STRIPE, ALIPAY, WECHATPAY)


def lab() -> ProviderLab:
    """The sandbox that runs in development when no account has a key, and in the demo."""
    return LABS[0]


def _main_account() -> Account:
    """The main account of the sandbox's provider, as the default settings name it."""
    chosen = registry.plugin(lab().provider)
    return next(a for a in chosen.accounts(ProviderSettings()) if a.primary)


def start_sandbox(settings: Any, resources: ExitStack, secret: str, public_url: str) -> Account:
    """Start the development sandbox; its webhooks go to ``public_url``'s route for it."""
    url = public_url.rstrip("/") + "/v1/webhooks/sandbox"
    return lab().start(settings, resources, secret, url)


def start_shared_sandbox(settings: Any, resources: ExitStack, public_url: str) -> dict[str, str]:
    """Start the development sandbox for several processes (``serve --processes``), its
    webhooks to ``public_url``'s route for the main account, with a secret made here; the
    environment that points the processes at it (as their main account)."""
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    url = public_url.rstrip("/") + "/v1/webhooks/" + sandbox_route()
    account = lab().start(settings, resources, secret, url)
    return sandbox_env(account.base_url, secret)


def sandbox_env(base_url: str, webhook_secret: str) -> dict[str, str]:
    """The environment that points the sandbox provider's main account at a sandbox
    running at ``base_url`` (a process of its own, as the demo runs it)."""
    main = _main_account()
    return {
        main.key_variable: lab().key,
        main.url_variable: base_url,
        main.secret_variable: webhook_secret,
    }


def sandbox_secret_variable() -> str:
    """The variable that gives the sandbox provider's main account its webhook secret."""
    return _main_account().secret_variable


def names() -> list[str]:
    """The providers with a sandbox, the development one first."""
    return [candidate.provider for candidate in LABS]


def named(provider: str) -> ProviderLab:
    """The lab of ``provider`` (one of :func:`names`)."""
    return next(candidate for candidate in LABS if candidate.provider == provider)


def serve_sandbox(
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str,
    *,
    provider: str | None = None,
) -> None:
    """Serve a sandbox as a process (see :attr:`ProviderLab.serve`): ``provider``'s, or the
    development one."""
    chosen = named(provider) if provider else lab()
    chosen.serve(host, port, faults, seed, db_path, webhook_url, webhook_secret)


def sandbox_config(provider: str, host: str, port: int, db_path: str, secret: str) -> str:
    """The settings that point orderguard at ``provider``'s sandbox served so."""
    return named(provider).config(host, port, db_path, secret)


def sandbox_variables() -> tuple[str, ...]:
    """Environment variables a sandbox process reads (test hooks passed on to it)."""
    return lab().variables


def sandbox_route() -> str:
    """The webhook route's last part for the sandbox provider's main account."""
    return _main_account().name
