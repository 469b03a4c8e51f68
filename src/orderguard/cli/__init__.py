"""The ``orderguard`` command: the ``main`` group and, from one module per command group,
its commands (``serve``/``worker``, ``demo``/``sandbox-provider``, ``migrate``/``prune``,
``orders``, ``sweep``, ``users``, ``keys``, ``outbox``/``endpoints``, ``doctor``, ``budget``,
``audit``, ``reconcile``). A command's module is imported only when it runs
(:mod:`orderguard.cli.lazy`). Shared helpers live in :mod:`orderguard.cli.common`."""

from __future__ import annotations

import click

from orderguard import __version__
from orderguard.cli.lazy import LazyGroup
from orderguard.observability.logs import configure_logging

#: Every command of ``orderguard``: its name and where it is defined.
COMMANDS = {
    "migrate": "orderguard.cli.migrate:migrate",
    "prune": "orderguard.cli.migrate:prune",
    "serve": "orderguard.cli.serve:serve",
    "worker": "orderguard.cli.serve:worker",
    "orders": "orderguard.cli.orders:orders",
    "sweep": "orderguard.cli.operations:sweep",
    "users": "orderguard.cli.users:users",
    "keys": "orderguard.cli.keys:keys",
    "outbox": "orderguard.cli.outbox:outbox",
    "endpoints": "orderguard.cli.outbox:endpoints",
    "doctor": "orderguard.cli.doctor:doctor",
    "budget": "orderguard.cli.budget:budget",
    "audit": "orderguard.cli.audit:audit",
    "reconcile": "orderguard.cli.reconcile:reconcile",
    "demo": "orderguard.cli.demo:demo",
    "sandbox-provider": "orderguard.cli.demo:sandbox_provider",
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(__version__, prog_name="orderguard")
def main() -> None:
    """orderguard: no order is lost between checkout, payment provider and database."""
    configure_logging()
