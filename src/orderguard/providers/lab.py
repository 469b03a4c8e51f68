"""What a provider package with a sandbox gives the lab registry (:mod:`.labs`): how to start
it in-process and serve it as a process, its test key and the variables it reads.

The lab is kept apart from :mod:`.plugin` so that production code, which reads only the
registry, never imports a sandbox (not even inside a function).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from orderguard.providers.plugin import Account

#: Start the provider's sandbox for development: (settings, resources, webhook secret,
#: webhook URL) -> the account charging at it; the sandbox stops with ``resources``.
StartSandbox = Callable[[Any, ExitStack, str, str], Account]
#: Serve the sandbox until interrupted (``orderguard sandbox-provider``): host, port, fault
#: profile, seed, ledger path, webhook URL (or ``None``), webhook secret.
ServeSandbox = Callable[[str, int, str, int, str, str | None, str], None]
#: The settings that point orderguard at a sandbox served so (host, port, ledger path,
#: webhook secret), as ``NAME=value`` lines: ``orderguard sandbox-provider --print-config``.
SandboxConfig = Callable[[str, int, str, str], str]
#: Read a ``--faults`` value: a fault profile's name or the path of a TOML profile (the
#: profile; ``ValueError`` when it names none).
LoadFaults = Callable[[str], object]


@dataclass(frozen=True, slots=True)
class ProviderLab:
    """One provider's sandbox, as the lab registry lists it."""

    #: The registered provider (:attr:`ProviderPlugin.name`) the sandbox imitates.
    provider: str
    #: How people write that provider (``Stripe``).
    title: str
    #: Start the sandbox in-process (development with no account key set).
    start: StartSandbox
    #: Serve the sandbox as a process of its own (``orderguard sandbox-provider``).
    serve: ServeSandbox
    #: The test key the sandbox accepts (given to processes that charge at a sandbox).
    key: str
    #: Environment variables the sandbox reads, passed on to a sandbox process (test hooks).
    variables: tuple[str, ...]
    #: The settings that point orderguard at it (keys it made at first start included).
    config: SandboxConfig
    #: Its fault profiles, by name or TOML file (``--faults``).
    load_faults: LoadFaults
    #: Whether its webhooks are signed with the shared secret (``--webhook-secret``); a
    #: wallet's sandbox signs with the key pair it made instead.
    signs_with_secret: bool = True
