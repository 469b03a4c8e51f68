"""The ``orderguard`` command: the ``main`` group and, from one module per command group,
its commands (``serve``/``worker``, ``demo``/``sandbox-provider``, ``migrate``/``prune``,
``orders``, ``sweep``, ``users``, ``keys``, ``outbox``/``endpoints``, ``doctor``,
``audit``, ``reconcile``). Shared helpers live in :mod:`orderguard.cli.common`."""

from __future__ import annotations

import click

from orderguard import __version__
from orderguard.cli import (
    audit,
    demo,
    doctor,
    keys,
    migrate,
    operations,
    orders,
    outbox,
    reconcile,
    serve,
    users,
)
from orderguard.observability.logs import configure_logging


@click.group()
@click.version_option(__version__, prog_name="orderguard")
def main() -> None:
    """orderguard: no order is lost between checkout, payment provider and database."""
    configure_logging()


main.add_command(migrate.migrate)
main.add_command(serve.serve)
main.add_command(serve.worker)
main.add_command(migrate.prune)
main.add_command(orders.orders)
for _command in (operations.recheck, operations.refund, operations.cancel):
    orders.orders.add_command(_command)
main.add_command(operations.sweep)
main.add_command(users.users)
main.add_command(keys.keys)
outbox.register(main)
main.add_command(doctor.doctor)
main.add_command(audit.audit)
main.add_command(reconcile.reconcile)
main.add_command(demo.demo)
main.add_command(demo.sandbox_provider)
