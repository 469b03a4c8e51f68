"""What a provider package gives the registry: how to read its accounts from the settings,
build an adapter for one, and what the rest of orderguard must know of it (profile, live
keys, credential shapes for redaction, settlement report formats). Its sandbox is not here
but in its lab (:mod:`.lab`), so that the registry never reaches a sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from orderguard.providers.base import PaymentProvider
from orderguard.providers.profile import ProviderProfile
from orderguard.providers.settlement import SettlementFormat


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
    #: The prefix of its environment variables (``ORDERGUARD_STRIPE``).
    variables: str
    #: What identifies the account to the provider: an API key (Stripe's secret key), an
    #: app id (Alipay), a merchant number (WeChat Pay). Unset: the account is not in use.
    api_key: str | None
    #: The provider's API address.
    base_url: str
    #: What verifies its webhooks: a shared secret (Stripe), the provider's public key
    #: (Alipay), the key that decrypts them (WeChat Pay's APIv3 key).
    webhook_secret: str | None
    #: The provider's main account (the others are fail-over accounts).
    primary: bool = True
    #: The suffixes of the variables that hold ``api_key``, ``base_url`` and
    #: ``webhook_secret`` (Stripe's: ``ORDERGUARD_STRIPE_API_KEY``, ...): production's
    #: refusals, ``doctor`` and ``serve``'s warnings name them.
    key_name: str = "API_KEY"
    url_name: str = "BASE_URL"
    secret_name: str = "WEBHOOK_SECRET"

    def variable(self, suffix: str) -> str:
        """One of its variables: ``variable("API_KEY")`` -> ``ORDERGUARD_STRIPE_API_KEY``."""
        return f"{self.variables}_{suffix}"

    @property
    def key_variable(self) -> str:
        """The variable of ``api_key``."""
        return self.variable(self.key_name)

    @property
    def url_variable(self) -> str:
        """The variable of ``base_url``."""
        return self.variable(self.url_name)

    @property
    def secret_variable(self) -> str:
        """The variable of ``webhook_secret``."""
        return self.variable(self.secret_name)


@dataclass(frozen=True, slots=True)
class TestKit:
    """What a simulated shopper and an auditor of a test ledger know of the provider: its
    test payment methods by what they do, and its units. (No sandbox: the in-memory fake,
    the sandbox and the shopper's page all understand these methods.)"""

    __test__ = False  # not a test class, whatever pytest makes of its name

    #: A test payment method charged at once.
    succeeds: str
    #: One declined by the issuer.
    declined: str
    #: One that needs 3-D Secure: waits until the shopper approves or refuses.
    needs_authentication: str
    #: An amount in the provider's units (its ledger's) -> ISO 4217 minor units, given the
    #: currency.
    minor_units: Callable[[int, str], int]
    #: The step (ISO 4217 minor units) every amount it charges in a currency is a whole
    #: multiple of.
    amount_step: Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Checkup:
    """What ``orderguard doctor`` checks of one account besides the provider's answer to a
    read-only call: that its keys read, and where the provider posts its notifications."""

    #: ``(variable, what is wrong)`` for each key setting that cannot be read or parsed, or
    #: that is not the key it claims to be.
    key_problems: list[tuple[str, str]]
    #: The variables of what signs our requests (to fix when the provider refuses our
    #: signature) and of what verifies the provider's answers.
    signing_variables: tuple[str, ...]
    verifying_variables: tuple[str, ...]
    #: Where the provider posts this account's notifications (``None``: not set), and the
    #: variable that says so.
    notify_url: str | None
    notify_variable: str


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
    #: Whether an account (its key set) moves real money: its key says so (Stripe's
    #: ``sk_live_``), or its address does (Alipay's production gateway).
    is_live: Callable[[Account], bool]
    #: What production asks for instead of a test key (``its live key (sk_live_...) at ...``).
    live_key_hint: str
    #: Which of an account's variables says whether it is live: ``key`` (Stripe's
    #: ``sk_live_``) or ``url`` (Alipay's production gateway). Production's refusal of an
    #: account that takes no real money names that variable.
    live_by: Literal["key", "url"] = "key"
    #: What production asks for when the webhook secret is missing or a placeholder.
    secret_hint: str = "the signing secret (whsec_...) of this account's webhook endpoint"
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
    #: The settlement report formats it publishes (``orderguard reconcile --format NAME``).
    settlement_formats: tuple[SettlementFormat, ...] = ()
    #: Its test payment methods by behaviour and its units (the demo's shoppers and audit).
    test_kit: TestKit | None = None
    #: What production refuses beyond the neutral checks of each account (key, address,
    #: webhook secret): ``(variable, what is wrong)`` pairs, given the settings.
    problems: Callable[[Any], list[tuple[str, str]]] = lambda settings: []
    #: What ``doctor`` checks of an account beyond a read-only call (keys, notify URL),
    #: for a provider that is told its notify URL with each payment; ``None``: nothing.
    checkup: Callable[[Account], Checkup] | None = None
