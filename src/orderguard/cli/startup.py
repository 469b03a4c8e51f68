"""How the long-running commands start: settings or one line and exit 2, then (in
production) :func:`~orderguard.production.production_problems` or one line and exit 2."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from orderguard.config import ConfigError, Settings
from orderguard.production import production_problems
from orderguard.providers import registry

log = logging.getLogger("orderguard")
#: The exit code of a start refused for its configuration (as ``doctor``'s failures).
REFUSED = 2


def refuse(line: str) -> NoReturn:
    """Print ``line`` on stderr and exit with :data:`REFUSED`."""
    click.echo(line, err=True)
    sys.exit(REFUSED)


def load_settings() -> Settings:
    """The settings, or one line on stderr and exit 2 (a typo'd variable, a bad value)."""
    try:
        return Settings.load()
    except ConfigError as exc:
        refuse(f"orderguard: configuration: {exc}")


def refuse_unsafe_production(settings: Settings, *, active_api_keys: int) -> None:
    """Exit 2 with the first problem's line when production mode refuses this deployment."""
    problems = production_problems(settings, active_api_keys=active_api_keys)
    if problems:
        refuse(problems[0].line)


def warn_unverifiable_webhooks(settings: Settings) -> None:
    """In development, say once that an account without a webhook secret refuses webhooks."""
    for _, account in registry.accounts(settings):
        if account.api_key and not account.webhook_secret:
            log.warning(
                "%s is not set: every webhook from this account is refused; "
                "set it to the signing secret of the account's webhook endpoint",
                account.secret_variable,
            )
