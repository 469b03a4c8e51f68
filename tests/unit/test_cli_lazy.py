"""The ``orderguard`` command imports a command's module only when it runs."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from orderguard.cli import COMMANDS, main
from orderguard.cli.lazy import LazyGroup

EVERY_COMMAND = {
    "migrate", "prune", "serve", "worker", "orders", "sweep", "users", "keys", "outbox",
    "endpoints", "doctor", "budget", "audit", "reconcile", "demo", "sandbox-provider",
}  # fmt: skip


def test_every_named_command_resolves_to_a_command_of_that_name() -> None:
    context = click.Context(main)
    assert set(main.list_commands(context)) == EVERY_COMMAND
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name


def test_the_orders_group_takes_recheck_refund_and_cancel_lazily() -> None:
    group = main.get_command(click.Context(main), "orders")
    assert isinstance(group, click.Group)
    names = set(group.list_commands(click.Context(group)))
    assert {"list", "show", "recheck", "refund", "cancel"} <= names
    refund = group.get_command(click.Context(group), "refund")
    assert refund is not None and refund.name == "refund"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in EVERY_COMMAND:
        assert f"  {name} " in result.output


def test_a_name_that_is_not_a_command_is_an_error_not_a_silent_none() -> None:
    group = LazyGroup(name="x", lazy={"bad": "orderguard.cli.lazy:LazyGroup"})
    try:
        group.get_command(click.Context(group), "bad")
    except TypeError as exc:
        assert "is not a click command" in str(exc)
    else:
        raise AssertionError("a class was accepted as a command")


def test_importing_the_command_imports_no_command_module() -> None:
    code = (
        "import sys, orderguard.cli; "
        "print(sorted(m for m in sys.modules if m.startswith(('orderguard.cli.', "
        "'orderguard.bootstrap', 'fastapi', 'stripe'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['orderguard.cli.lazy']"
