"""What a provider package gives the registry: how to read its accounts from the settings,
build an adapter for one, start its sandbox, and what the rest of orderguard must know of
it (profile, live keys, credential shapes for redaction)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from orderguard.providers.base import PaymentProvider
from orderguard.providers.profile import ProviderProfile


class AccountProvider(PaymentProvider, Protocol):
    """An adapter built for one account: it knows whether that account moves real money."""

    #: Whether the account moves real money; its orders are not test mode.
    livemode: bool


@dataclass(frozen=True, slots=True)
class Account:
    """One provider account, as the settings describe it."""

    #: The provider package's name (``stripe``).
    provider: str
    #: The account's name: stored on attempts, the last part of its webhook route.
    name: str
    #: The prefix of its environment variables (``ORDERGUARD_STRIPE``): ``{prefix}_API_KEY``,
    #: ``{prefix}_BASE_URL`` and ``{prefix}_WEBHOOK_SECRET``.
    variables: str
    api_key: str | None
    base_url: str
    webhook_secret: str | None
    #: The provider's main account (the others are fail-over accounts).
    primary: bool = True

    def variable(self, suffix: str) -> str:
        """One of its variables: ``variable("API_KEY")`` -> ``ORDERGUARD_STRIPE_API_KEY``."""
        return f"{self.variables}_{suffix}"


#: Start the provider's sandbox for development: (settings, resources, webhook secret,
#: webhook URL) -> the account charging at it; the sandbox stops with ``resources``.
StartSandbox = Callable[[Any, ExitStack, str, str], Account]


@dataclass(frozen=True, slots=True)
class ProviderPlugin:
    """One provider package, as the registry lists it."""

    #: The provider's name (``stripe``).
    name: str
    #: How people write it (``Stripe``).
    title: str
    profile: ProviderProfile
    #: The accounts the settings name: the main one always (its key may be unset), each
    #: fail-over account whose key is set.
    accounts: Callable[[Any], list[Account]]
    #: The adapter for one account, with a time limit per call (seconds).
    build: Callable[[Account, float], AccountProvider]
    #: Whether an API key moves real money.
    is_live_key: Callable[[str], bool]
    #: What production asks for instead of a test key (``its live key (sk_live_...) at ...``).
    live_key_hint: str
    #: Its sandbox, started in development when no account of any provider has a key.
    sandbox: StartSandbox | None = None
    #: The test key its sandbox accepts (given to processes that charge at a sandbox).
    sandbox_key: str = ""
    #: Serve its sandbox until interrupted (``orderguard sandbox-provider``): host, port,
    #: fault profile, seed, ledger path, webhook URL (or ``None``), webhook secret.
    serve_sandbox: Callable[[str, int, str, int, str, str | None, str], None] | None = None
    #: Environment variables its sandbox reads, passed on to a sandbox process (test hooks).
    sandbox_variables: tuple[str, ...] = ()
    #: Regular expressions of its credentials (keys, webhook secrets, client secrets),
    #: taken out of logs, and substrings one of which each needs to match (a quick test).
    credentials: tuple[str, ...] = ()
    credential_markers: tuple[str, ...] = ()
    #: Regular expressions of what the console hides from a non-admin in its raw text:
    #: credentials and the shopper's payment tokens.
    hidden_shapes: tuple[str, ...] = ()
    #: Headers that carry its webhook signatures (lower case).
    signature_headers: tuple[str, ...] = ()
    #: Its SDK's loggers, too chatty at INFO.
    loggers: tuple[str, ...] = ()
