"""The edges the composition root removed stay removed: the HTTP app and the faces do
not wire themselves, and lower parts do not import upwards (read from the source)."""

from __future__ import annotations

import ast
from email.message import EmailMessage
from pathlib import Path

import click
import pytest

from orderguard.domain.countries import NotACountry, country_code
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.outbox.email import EmailSink, SmtpServer
from orderguard.outbox.templates import EmailTemplates
from tests.factories import new_order

SRC = Path(__file__).parents[2] / "src" / "orderguard"


def imports_of(package: str, *, src: Path = SRC) -> dict[str, set[str]]:
    """Every module a file of ``package`` (a path under ``src``) imports."""
    root = src / package
    files = [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))
    found: dict[str, set[str]] = {}
    for file in files:
        names: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(file.relative_to(src))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...], *, src: Path = SRC) -> list[str]:
    """Imports of a forbidden module or anything in it (a name ending in ``!``: only it)."""

    def hit(name: str, rule: str) -> bool:
        exact = rule.removesuffix("!")
        return name == exact or (rule == exact and name.startswith(exact + "."))

    return sorted(
        f"{file} imports {name}"
        for file, names in imports_of(package, src=src).items()
        for name in names
        if any(hit(name, rule) for rule in forbidden)
    )


#: What installs the faces: the web package's ``install`` and the pages it mounts.
WEB_WIRING = (
    "orderguard.web!",
    "orderguard.web.install",
    "orderguard.web.console",
    "orderguard.web.shopper_page",
)

#: What wires the application, which the faces (api, web) are given instead of importing.
WIRING = (
    "orderguard.container",
    "orderguard.bootstrap",
    "orderguard.observability.wiring",
    "orderguard.providers.registry",
)
#: The API's route modules (the web shares services with them, not the routes).
API_ROUTES = tuple(
    f"orderguard.api.{name}"
    for name in ("app", "orders", "operations", "shopper", "inbound_webhooks", "health")
)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("api", ("orderguard.bootstrap", "orderguard.worker", "orderguard.cli", *WEB_WIRING)),
        (
            "web",
            ("orderguard.bootstrap", "orderguard.worker", "orderguard.cli", "orderguard.api.app"),
        ),
        # the faces are leaves: given their wiring and what the providers offer
        ("api", WIRING),
        ("web", (*WIRING, *API_ROUTES)),
        ("outbox", ("orderguard.api", "orderguard.config", "orderguard.bootstrap")),
        ("services", ("orderguard.api", "orderguard.config", "orderguard.bootstrap")),
        ("config.py", ("orderguard.services", "orderguard.api", "orderguard.bootstrap")),
        ("worker.py", ("orderguard.bootstrap", "orderguard.api", "orderguard.web")),
        ("container.py", ("orderguard.bootstrap", "orderguard.api", "orderguard.web")),
    ],
)
def test_a_part_does_not_import_what_wires_it_or_sits_above_it(
    package: str, forbidden: tuple[str, ...]
) -> None:
    assert offenders(package, forbidden) == []


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # the inbox stores and dispatches; bootstrap gives it what applies an event
        (
            "services/inbound_webhooks.py",
            (
                "orderguard.services.webhook_events",
                "orderguard.services.recheck",
                "orderguard.services.payments",
            ),
        ),
        # the worker calls its relay and the doctor's checks; bootstrap gives them
        ("worker.py", ("orderguard.observability", "orderguard.outbox")),
        # commands that only open the database get it from storage/opening.py
        *[
            (f"cli/{name}.py", ("orderguard.bootstrap",))
            for name in ("common", "keys", "users", "orders", "migrate", "audit", "outbox")
        ],
    ],
)
def test_a_part_is_given_what_it_only_calls(module: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(module, forbidden) == []


def test_the_import_reader_catches_lazy_imports_and_the_web_package_itself(
    tmp_path: Path,
) -> None:
    """The check above would see an import inside a function (the old ``cli_keys`` kind)
    and ``from orderguard import web``, and lets the catalog ``web.i18n`` through."""
    api = tmp_path / "api"
    api.mkdir()
    (api / "lazy.py").write_text("def f() -> None:\n    from orderguard.bootstrap import wire\n")
    (api / "faces.py").write_text("from orderguard import web\nfrom orderguard.web import i18n\n")
    rules = ("orderguard.bootstrap", *WEB_WIRING)
    assert offenders("api", rules, src=tmp_path) == [
        "api/faces.py imports orderguard.web",
        "api/lazy.py imports orderguard.bootstrap",
        "api/lazy.py imports orderguard.bootstrap.wire",
    ]


def test_the_email_carries_the_link_its_wiring_gave() -> None:
    order = new_order()
    sink = EmailSink(
        SmtpServer("mail.example", 587),
        sender="shop <orders@shop.example>",
        status_link=lambda o: f"https://links.example/track/{o.id}",
        templates=EmailTemplates(None),
        timeout_s=1.0,
    )
    event = OutboxEvent("evt_1", order.id, EventType.RECEIVED, order.created_at)
    message: EmailMessage = sink.message(event, order)
    text = message.get_body(("plain",))
    assert text is not None
    assert f"https://links.example/track/{order.id}" in str(text.get_content())


@pytest.mark.parametrize(("raw", "code"), [("pt", "PT"), (" de ", "DE"), ("US", "US")])
def test_a_country_code_is_read_in_any_case(raw: str, code: str) -> None:
    assert country_code(raw) == code


@pytest.mark.parametrize("raw", ["XX", "Portugal", "", "P"])
def test_anything_else_is_not_a_country(raw: str) -> None:
    with pytest.raises(NotACountry, match="ISO 3166-1 alpha-2"):
        country_code(raw)


#: The CLI's helper modules; every other module of ``cli/`` is one command group.
#: (``bill_fetch.py``: ``reconcile --fetch``'s download, a helper of that one command.)
#: ``supervisor`` and ``child`` are ``serve --processes``'s supervisor and its processes.
CLI_HELPERS = {
    "cli/__init__.py",
    "cli/common.py",
    "cli/lazy.py",
    "cli/startup.py",
    "cli/bill_fetch.py",
    "cli/supervisor.py",
    "cli/child.py",
}


def test_no_cli_command_module_imports_another() -> None:
    allowed = {
        "orderguard.cli",
        "orderguard.cli.common",
        "orderguard.cli.lazy",
        "orderguard.cli.lazy.LazyGroup",
        "orderguard.cli.startup",
        "orderguard.cli.common.duration",
        "orderguard.cli.common.flagged",
        "orderguard.cli.startup.load_settings",
        "orderguard.cli.startup.warn_unverifiable_webhooks",
        "orderguard.cli.bill_fetch",
        "orderguard.cli.supervisor",
        "orderguard.cli.supervisor.Supervisor",
    }
    commands = {f: n for f, n in imports_of("cli").items() if f not in CLI_HELPERS}
    assert len(commands) >= 10
    crossing = sorted(
        f"{file} imports {name}"
        for file, names in commands.items()
        for name in names
        if name.startswith("orderguard.cli") and name not in allowed
    )
    assert crossing == []


def test_the_orderguard_command_keeps_every_command_name() -> None:
    from orderguard.cli import main

    def names(group: click.Group) -> dict[str, object]:
        context = click.Context(group)  # the commands as click finds them (some are lazy)
        commands = {name: group.get_command(context, name) for name in group.list_commands(context)}
        return {
            name: names(command) if isinstance(command, click.Group) else None
            for name, command in commands.items()
        }

    assert names(main) == {
        "audit": {"customers": None},
        "budget": None,
        "demo": None,
        "doctor": None,
        "endpoints": {"add": None, "list": None, "remove": None, "rotate-secret": None},
        "keys": {"create": None, "list": None, "revoke": None},
        "migrate": None,
        "orders": {"cancel": None, "list": None, "recheck": None, "refund": None, "show": None},
        "outbox": {"list": None, "relay": None, "replay": None, "status": None},
        "prune": None,
        "reconcile": None,
        "sandbox-provider": None,
        "serve": None,
        "sweep": None,
        "users": {"add": None, "list": None, "passwd": None, "remove": None},
        "worker": None,
    }
