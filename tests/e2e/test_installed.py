"""orderguard installed the way a shop installs it, then run as a shop runs it.

The wheel is built from this checkout and installed with ``pip install -c
requirements/constraints.txt`` into a clean virtual environment, without the ``test``
extra. Everything orderguard does then runs as processes of that installation's
``orderguard`` console script, with no ``PYTHONPATH``: ``migrate`` on PostgreSQL, ``keys
create``, ``endpoints add``, the sandbox provider in a process of its own configured as a
Stripe account, and ``serve``. One order paid with a test card must reach a merchant
webhook receiver (signature checked here with ``standardwebhooks``), an SMTP server
(aiosmtpd) and NATS JetStream; a settlement report must confirm its charge; ``doctor`` must
pass. A module that imports something ``dependencies`` does not declare fails the first test.

The built environment is kept per wheel, constraints and interpreter under the system's
temporary directory, so a rerun of an unchanged checkout skips the install.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
import pytest
from nats.js import JetStreamContext
from standardwebhooks import Webhook

from orderguard.api.server import free_port
from orderguard.providers.stripe.testcards import SUCCEEDS
from tests.conftest import service_missing
from tests.e2e.procs import Server, run_cli
from tests.factories import order_body
from tests.outbox_kit import Mailbox, Receiver, receiver, smtp_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: The installed service runs in production mode: a plain-http public URL on loopback (the
#: TLS proxy a real deployment puts in front is not part of this test) and the staging
#: opt-in (the provider is the sandbox, on loopback over http, with a ``sk_test_`` key).
PRODUCTION_ENV: dict[str, str] = {
    "ORDERGUARD_ENV": "production",
    "ORDERGUARD_ALLOW_HTTP": "true",
    "ORDERGUARD_ALLOW_TEST_PROVIDER": "true",
}
#: What ``keys create`` is given: a checkout back-end's scopes, refunds included.
KEY_CREATE_ARGS = [
    "--scope",
    "orders:read",
    "--scope",
    "orders:write",
    "--scope",
    "payments:refund",
]
#: What ``endpoints add`` is given: the receiver listens on loopback, refused without it.
ENDPOINT_ADD_ARGS = ["--allow-private"]

#: The checkout the wheel is built from.
ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
#: Built environments, one directory per wheel + constraints + interpreter.
CACHE = Path(tempfile.gettempdir()) / "orderguard-installed-venvs"
#: Cached environments unused for this long are removed by the next build.
CACHE_MAX_AGE_S = 2 * 24 * 3600
NATS_URL = "nats://127.0.0.1:4222"
#: Variables of the test's own environment that would leak its packages into the install.
LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")
#: Seconds the order's events get to reach every sink.
DELIVERY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Installed:
    """A clean virtual environment with orderguard's wheel and its dependencies only."""

    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    @property
    def orderguard(self) -> str:
        return str(self.bin / "orderguard")

    def env(self, **settings: str) -> dict[str, str]:
        """This process's environment without ``ORDERGUARD_*`` or anything that points
        Python elsewhere, the venv first on ``PATH``, plus ``settings``."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ORDERGUARD_") and k not in LEAKY
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(settings)
        return env

    def python_run(self, code: str) -> subprocess.CompletedProcess[str]:
        """``python -c code`` in the venv, in a clean environment."""
        return subprocess.run(
            [self.python, "-c", code],
            env=self.env(),
            cwd=self.venv,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert done.returncode == 0, (
        f"{done.args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def _pip(*args: str) -> list[str]:
    return [*args, "--disable-pip-version-check", "--quiet", "--no-input"]


def build_wheel(into: Path) -> Path:
    """The wheel of this checkout, built by pip (hatchling, in pip's isolated build)."""
    command = _pip(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(into), str(ROOT))
    ok(subprocess.run(command, capture_output=True, text=True, timeout=300, check=False))
    (wheel,) = into.glob("orderguard-*.whl")
    return wheel


def _cache_key(wheel: Path) -> str:
    digest = hashlib.sha256(wheel.read_bytes())
    digest.update(CONSTRAINTS.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def _forget_old(keep: Path) -> None:
    """Remove cached environments nobody used for a while (never the one in use)."""
    for entry in CACHE.iterdir():
        if (
            entry != keep
            and entry.is_dir()
            and time.time() - entry.stat().st_mtime > (CACHE_MAX_AGE_S)
        ):
            shutil.rmtree(entry, ignore_errors=True)


def install(wheel: Path) -> Installed:
    """A venv with ``wheel`` installed under the constraints (no extras), built once per
    key and shared by parallel test processes (a lock file serialises the build). It is
    built where it stays: a venv's scripts name its interpreter by absolute path."""
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / _cache_key(wheel)
    installed = Installed(target / "venv", target / wheel.name)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "ready").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            shutil.copy(wheel, installed.wheel)
            venv = [sys.executable, "-m", "venv", str(installed.venv)]
            ok(subprocess.run(venv, capture_output=True, text=True, timeout=120, check=False))
            pip = _pip(installed.python, "-m", "pip", "install", "-c", str(CONSTRAINTS))
            done = subprocess.run(
                [*pip, str(installed.wheel)],
                env=installed.env(),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            ok(done)
            (target / "ready").touch()
        os.utime(target)
        _forget_old(target)
    return installed


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """This checkout's wheel, installed in a clean venv without the ``test`` extra."""
    return install(build_wheel(tmp_path_factory.mktemp("wheel")))


# --- what the installed package declares ------------------------------------------------

#: Run in the venv: every module of the installed package, imported one by one.
IMPORT_ALL = """
import importlib, json, pkgutil, traceback
import orderguard
failed = {}
for info in pkgutil.walk_packages(orderguard.__path__, "orderguard."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # importing it runs the command
    try:
        importlib.import_module(info.name)
    except Exception:
        failed[info.name] = traceback.format_exc(limit=1)
print(json.dumps({"file": orderguard.__file__, "failed": failed}))
"""
#: Run in the venv: which distribution provides each top-level module, and what
#: orderguard's metadata requires.
METADATA = """
import importlib.metadata as m, json
print(json.dumps({"providers": m.packages_distributions(), "requires": m.requires("orderguard")}))
"""


def _normalise(name: str) -> str:
    """A distribution name in PEP 503 form (``prometheus_client`` = ``prometheus-client``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(requires: list[str]) -> set[str]:
    """The distributions named in ``dependencies``: requirements without an extra marker."""
    names = set()
    for requirement in requires:
        if "extra ==" in requirement.replace("extra==", "extra =="):
            continue
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert found, requirement
        names.add(_normalise(found.group()))
    return names


def imported_top_level_modules(package: Path) -> set[str]:
    """Every top-level module the source under ``package`` imports anywhere (also inside
    functions), except the standard library's and its own."""
    modules = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != package.name}


def test_the_installed_package_imports_only_what_its_dependencies_declare(
    installed: Installed,
) -> None:
    assert "No broken requirements found" in ok(
        subprocess.run(
            [installed.python, "-m", "pip", "check"],
            env=installed.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    )
    without_test_extra = installed.python_run(
        "import importlib.util as u; "
        "print([m for m in ('pytest', 'aiosmtpd', 'hypothesis') if u.find_spec(m)])"
    )
    assert ok(without_test_extra).strip() == "[]", "the test extra leaked into the install"

    loaded = json.loads(ok(installed.python_run(IMPORT_ALL)))
    assert Path(loaded["file"]).is_relative_to(installed.venv), loaded["file"]
    assert loaded["failed"] == {}, "\n".join(loaded["failed"].values())
    ok(installed.python_run("import standardwebhooks, starlette, aiosmtplib, nats, stripe"))

    metadata = json.loads(ok(installed.python_run(METADATA)))
    declared = declared_dependencies(metadata["requires"])
    undeclared = {}
    for module in sorted(imported_top_level_modules(ROOT / "src" / "orderguard")):
        providers = {_normalise(d) for d in metadata["providers"].get(module, [])}
        if not providers & declared:
            undeclared[module] = sorted(providers) or "not installed"
    assert undeclared == {}, f"imported but not in [project] dependencies: {undeclared}"


# --- the installed service, end to end --------------------------------------------------


@dataclass
class Stream:
    """A JetStream stream and subject prefix of this test's own."""

    name: str
    prefix: str
    js: JetStreamContext

    async def messages(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """``(subject, headers, document)`` of every message in the stream, oldest first."""
        try:
            info = await self.js.stream_info(self.name)
        except nats.js.errors.NotFoundError:
            return []  # the relay creates it with its first publish
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(self.name, seq)
            found.append((msg.subject, dict(msg.headers or {}), json.loads(msg.data or b"{}")))
        return found


@asynccontextmanager
async def jetstream() -> AsyncIterator[Stream]:
    """A unique stream name and subject prefix on the local NATS; deleted afterwards."""
    try:
        connection = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:  # any failure to connect means NATS is not there
        service_missing("NATS JetStream", repr(exc))
    token = uuid.uuid4().hex[:10]
    stream = Stream(f"OG_INSTALLED_{token}", f"oginstalled_{token}.orders", connection.jetstream())
    try:
        yield stream
    finally:
        try:
            await stream.js.delete_stream(stream.name)
        except nats.js.errors.NotFoundError:
            pass
        await connection.close()


@contextmanager
def sandbox_provider(
    installed: Installed, cwd: Path, *, webhook_url: str, webhook_secret: str
) -> Iterator[str]:
    """The installed ``orderguard sandbox-provider`` in a process of its own, posting signed
    webhooks to ``webhook_url``; yields its base URL."""
    port = free_port()
    log = cwd / "sandbox-provider.log"
    command = [
        installed.orderguard, "sandbox-provider", "--port", str(port),
        "--db", str(cwd / "sandbox-ledger.db"),
        "--webhook-url", webhook_url, "--webhook-secret", webhook_secret,
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=installed.env(), cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the sandbox provider exited:\n{log.read_text()}"
            try:
                httpx.get(f"{base}/ledger", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"no sandbox provider:\n{log.read_text()}"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


async def cli(installed: Installed, *args: str, env: dict[str, str], cwd: Path) -> str:
    """The installed ``orderguard ARGS...``, off the event loop; its output (it must succeed)."""
    done = await asyncio.to_thread(
        run_cli, *args, env=env, cwd=cwd, timeout=120, program=installed.orderguard
    )
    return ok(done)


async def until(what: str, check: Any, timeout_s: float = DELIVERY_TIMEOUT_S) -> Any:
    """Poll the coroutine function ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def paid_checkout(email: str) -> dict[str, Any]:
    """A checkout by ``email``, paid with the test card that always succeeds."""
    body = order_body(payment={"method": SUCCEEDS})
    body["customer"]["email"] = email
    return body


def settlement_report(path: Path, *, charge: str, amount: int, order_id: str) -> None:
    """A Stripe itemized settlement report: the order's charge, and one charge orderguard
    never made (which reconciliation must single out)."""
    header = [
        "balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross",
        "fee", "net", "reporting_category", "description", "charge_id", "payment_intent_id",
        "source_id", "payment_metadata[order_id]",
    ]  # fmt: skip
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")

    def line(txn: str, ref: str, minor: int, order: str) -> list[str]:
        gross, fee = minor / 100, 0.50
        return [txn, today, today, "eur", f"{gross:.2f}", f"{fee:.2f}", f"{gross - fee:.2f}",
                "charge", "checkout", f"ch_{txn}", ref, f"ch_{txn}", order]  # fmt: skip

    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerow(line("txn_ours", charge, amount, order_id))
        writer.writerow(line("txn_stranger", "pi_stranger", 1234, ""))


@pytest.mark.postgres
@pytest.mark.nats
async def test_the_installed_service_takes_a_paid_order_and_tells_every_sink(
    installed: Installed, pg_url: str, tmp_path: Path
) -> None:
    server = Server(env={}, cwd=tmp_path, program=installed.orderguard)
    stripe_webhook_secret = "whsec_" + secrets.token_urlsafe(24)
    shopper = f"installed-{uuid.uuid4().hex[:8]}@example.com"
    async with jetstream() as stream, receiver() as hook:
        with smtp_server() as mailbox:
            settings = {
                "ORDERGUARD_DATABASE_URL": pg_url,
                "ORDERGUARD_PUBLIC_URL": server.url,
                "ORDERGUARD_STRIPE_API_KEY": "sk_test_" + secrets.token_hex(12),
                "ORDERGUARD_STRIPE_WEBHOOK_SECRET": stripe_webhook_secret,
                "ORDERGUARD_SMTP_URL": mailbox.url,
                "ORDERGUARD_NATS_URL": NATS_URL,
                "ORDERGUARD_NATS_STREAM": stream.name,
                "ORDERGUARD_NATS_SUBJECT_PREFIX": stream.prefix,
                "ORDERGUARD_WORKER_ROUND_S": "0.2",
                "ORDERGUARD_OUTBOX_BACKOFF_S": "0.2",
                **PRODUCTION_ENV,
            }
            webhook_url = f"{server.url}/v1/webhooks/stripe"
            with sandbox_provider(
                installed, tmp_path, webhook_url=webhook_url, webhook_secret=stripe_webhook_secret
            ) as provider:
                env = installed.env(**settings, ORDERGUARD_STRIPE_BASE_URL=provider)
                await run_the_shop(installed, env, server, hook, mailbox, stream, shopper)


async def run_the_shop(
    installed: Installed,
    env: dict[str, str],
    server: Server,
    hook: Receiver,
    mailbox: Mailbox,
    stream: Stream,
    shopper: str,
) -> None:
    """Set the shop up with the installed CLI, serve it, and follow one paid order."""
    cwd = server.cwd
    assert "is at schema version" in await cli(installed, "migrate", env=env, cwd=cwd)
    created = await cli(installed, "keys", "create", "checkout", *KEY_CREATE_ARGS, env=env, cwd=cwd)
    api_key = re.search(r"secret: (og_sk_\S+)", created)
    assert api_key, created
    added = await cli(installed, "endpoints", "add", hook.url, *ENDPOINT_ADD_ARGS, env=env, cwd=cwd)
    signing_secret = re.search(r"signing secret: (whsec_\S+)", added)
    assert signing_secret, added

    server.env = env
    await asyncio.to_thread(server.start)
    try:
        headers = {"Authorization": f"Bearer {api_key[1]}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as api:
            order = await place_and_wait_until_paid(api, shopper)
            await follow_the_order(hook, mailbox, stream, order, signing_secret[1])
        await provider_webhook_applied(env["ORDERGUARD_DATABASE_URL"], order["id"])
        await reconcile_and_check(installed, env, cwd, order)
        report = await asyncio.to_thread(
            run_cli, "doctor", "--json", env=env, cwd=cwd, program=installed.orderguard
        )
        checks = {c["name"]: c for c in json.loads(report.stdout)["checks"]}
        assert report.returncode == 0, report.stdout + report.stderr
        for name in ("database", "schema", "worker", "provider stripe", "smtp", "nats"):
            assert checks[name]["status"] == "pass", checks[name]
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


async def place_and_wait_until_paid(api: httpx.AsyncClient, shopper: str) -> dict[str, Any]:
    """Place the order over HTTP as a checkout does; its detail once it is paid."""
    placed = await api.post(
        "/v1/orders",
        json=paid_checkout(shopper),
        headers={"Idempotency-Key": f"installed-{uuid.uuid4()}"},
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    async def paid() -> dict[str, Any] | None:
        detail = await api.get(f"/v1/orders/{order_id}")
        assert detail.status_code == 200, detail.text
        body: dict[str, Any] = detail.json()
        return body if body["state"] == "paid" else None

    found: dict[str, Any] = await until(f"order {order_id} to be paid", paid)
    (attempt,) = found["payment_attempts"]
    assert attempt["provider"] == "stripe" and attempt["state"] == "succeeded", attempt
    assert found["amount_total"] == 3998
    return found


async def follow_the_order(
    hook: Receiver, mailbox: Mailbox, stream: Stream, order: dict[str, Any], secret: str
) -> None:
    """The relay delivered ``order.paid`` to the merchant webhook (signed), to the shopper's
    mailbox and to JetStream, under one event id."""

    async def webhook() -> list[dict[str, Any]]:
        documents = [json.loads(body) for _, body in hook.accepted]
        return [d for d in documents if d["type"] == "order.paid"]

    (paid,) = await until("the order.paid webhook", webhook)
    assert paid["data"]["order_id"] == order["id"]
    headers, body = next((h, b) for h, b in hook.accepted if json.loads(b)["id"] == paid["id"])
    Webhook(secret).verify(body, headers)  # raises when the signature does not verify
    assert headers["webhook-id"] == paid["id"]

    async def email() -> list[Any]:
        return [m for m in mailbox.received() if m["X-Orderguard-Event-Id"] == paid["id"]]

    (message,) = await until("the order.paid email", email)
    assert message["To"] == order["customer"]["email"]

    async def published() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        return [m for m in await stream.messages() if m[2].get("id") == paid["id"]]

    ((subject, nats_headers, document),) = await until("the order.paid message", published)
    assert subject == f"{stream.prefix}.paid"
    assert nats_headers["Nats-Msg-Id"] == paid["id"]
    assert document["data"]["order_id"] == order["id"]


async def provider_webhook_applied(database_url: str, order_id: str) -> None:
    """The sandbox's own webhook about the charge, signed with this account's secret, was
    accepted at ``/v1/webhooks/stripe`` and applied (read from the database, as an outside
    observer)."""

    async def applied() -> list[tuple[str, ...]]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            rows = await conn.execute(
                "SELECT type FROM webhook_events WHERE provider = 'stripe' AND order_id = %s"
                " AND processed_at IS NOT NULL",
                (order_id,),
            )
            return await rows.fetchall()

    types = {t for (t,) in await until("the provider's webhook to be applied", applied)}
    assert "payment_intent.succeeded" in types, types


async def reconcile_and_check(
    installed: Installed, env: dict[str, str], cwd: Path, order: dict[str, Any]
) -> None:
    """A settlement report with the order's charge and a stranger's: only the stranger's
    is an exception."""
    (attempt,) = order["payment_attempts"]
    report = cwd / "stripe-settlement.csv"
    settlement_report(
        report, charge=attempt["provider_ref"], amount=order["amount_total"], order_id=order["id"]
    )
    out = cwd / "exceptions.json"
    summary = await cli(installed, "reconcile", str(report), "--out", str(out), env=env, cwd=cwd)
    document = json.loads(out.read_text())
    assert document["errors"] == [], summary
    assert [(e["category"], e["provider_ref"]) for e in document["exceptions"]] == [
        ("missing_in_orders", "pi_stranger")
    ], summary
    assert "exceptions: 1" in summary
