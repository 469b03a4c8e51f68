"""A click group whose commands are imported only when one of them runs.

``orderguard keys list`` should not import the web server, the provider SDK and the
sandbox before it starts: each command module is named as ``"module:attribute"`` and
imported on first use (``--help`` imports them all, to show their one-line help). A typo
in a name fails ``tests/unit/test_cli_lazy.py``, not a user's command."""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyGroup(click.Group):
    """``click.Group`` with ``lazy={"name": "package.module:command"}``."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command
