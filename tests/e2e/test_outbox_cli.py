"""The real ``orderguard`` command: ``endpoints add|list|rotate-secret|remove`` and
``outbox relay|list|replay|status``, on SQLite and PostgreSQL, with a real receiver."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import orjson
from standardwebhooks import Webhook

from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.e2e.procs import clean_env, run_cli
from tests.outbox_kit import live, receiver


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the command off the event loop (the receiver is served on it)."""
    return await asyncio.to_thread(run_cli, *args, env=env, cwd=cwd)


async def test_endpoints_and_dead_letters_are_managed_from_the_command_line(
    database_url: str, tmp_path: Path
) -> None:
    env = clean_env(
        database_url,
        ORDERGUARD_OUTBOX_MAX_ATTEMPTS="1",
        ORDERGUARD_OUTBOX_TIMEOUT_S="2",
    )
    ok(await cli("migrate", env=env, cwd=tmp_path))
    storage: SqlStorage = await open_storage(database_url)
    try:
        order = await live(storage, life=())
        async with receiver(fail_first=1) as hook:
            added = ok(
                await cli(
                    "endpoints",
                    "add",
                    hook.url,
                    "--description",
                    "shop",
                    "--allow-private",
                    env=env,
                    cwd=tmp_path,
                )
            )
            endpoint_id = added.split()[0]
            secret = re.search(r"signing secret: (whsec_\S+)", added)
            assert secret and endpoint_id.startswith("wep_")
            assert endpoint_id in ok(await cli("endpoints", "list", env=env, cwd=tmp_path))

            assert "delivered 0, failed 0, dead 1" in ok(
                await cli("outbox", "relay", "--once", env=env, cwd=tmp_path)
            )
            dead = ok(await cli("outbox", "list", "--dead", env=env, cwd=tmp_path))
            (event_id,) = re.findall(r"^(evt_\S+)", dead, re.M)
            assert "answered 500" in dead and f"webhook:{endpoint_id}" in dead
            assert "not today" not in dead  # a private endpoint's answer body is not kept
            assert f"webhook:{endpoint_id}  lag=0.0s  dead=1" in ok(
                await cli("outbox", "status", env=env, cwd=tmp_path)
            )

            rotated = ok(
                await cli("endpoints", "rotate-secret", endpoint_id, env=env, cwd=tmp_path)
            )
            new_secret = re.search(r"new signing secret: (whsec_\S+)", rotated)
            assert new_secret
            assert "1 delivery queued again" in ok(
                await cli("outbox", "replay", event_id, env=env, cwd=tmp_path)
            )
            assert "delivered 1" in ok(
                await cli("outbox", "relay", "--once", env=env, cwd=tmp_path)
            )
            assert ok(await cli("outbox", "list", "--dead", env=env, cwd=tmp_path)).strip() == (
                "no deliveries"
            )
            sink = f"webhook:{endpoint_id}"
            assert "1 delivery queued again" in ok(
                await cli("outbox", "replay", event_id, "--sink", sink, env=env, cwd=tmp_path)
            )  # resent on purpose, though it was delivered
            assert "delivered 1" in ok(
                await cli("outbox", "relay", "--once", env=env, cwd=tmp_path)
            )

            assert "removed" in ok(
                await cli("endpoints", "remove", endpoint_id, env=env, cwd=tmp_path)
            )
            assert (
                ok(await cli("endpoints", "list", env=env, cwd=tmp_path)).strip() == "no endpoints"
            )
            gone = await cli("endpoints", "remove", endpoint_id, env=env, cwd=tmp_path)
            assert gone.returncode != 0 and "no active endpoint" in gone.stderr
        assert [orjson.loads(b)["id"] for _, b in hook.accepted] == [event_id, event_id]
        assert event_id.startswith("evt_") and order.id in hook.accepted[0][1].decode()
        for headers, body in hook.accepted:  # both secrets sign during the overlap
            Webhook(secret[1]).verify(body, headers)
            Webhook(new_secret[1]).verify(body, headers)
    finally:
        await storage.close()


async def test_replay_needs_an_event_or_all_dead_and_names_an_unknown_event(
    database_url: str, tmp_path: Path
) -> None:
    env = clean_env(database_url)
    ok(await cli("migrate", env=env, cwd=tmp_path))
    both = await cli("outbox", "replay", "evt_x", "--all-dead", env=env, cwd=tmp_path)
    assert both.returncode == 2 and "either EVENT_ID or --all-dead" in both.stderr
    unknown = await cli("outbox", "replay", "evt_nope", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "no outbox event 'evt_nope'" in unknown.stderr
    typo = await cli("outbox", "replay", "--all-dead", "--sink", "emial", env=env, cwd=tmp_path)
    assert typo.returncode == 2 and "'emial' is not a configured sink" in typo.stderr
    with_email = {**env, "ORDERGUARD_SMTP_URL": "smtp://127.0.0.1:1"}
    assert "0 deliveries queued again" in ok(
        await cli("outbox", "replay", "--all-dead", "--sink", "email", env=with_email, cwd=tmp_path)
    )
    assert "no sink configured" in ok(await cli("outbox", "status", env=env, cwd=tmp_path))


async def test_endpoints_on_loopback_private_metadata_or_with_a_password_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    env = clean_env(database_url)
    ok(await cli("migrate", env=env, cwd=tmp_path))
    refused = {
        "http://169.254.169.254/": "169.254.169.254 (cloud metadata)",
        "http://[::1]:22/": "::1 (loopback)",
        "http://127.0.0.1:22": "127.0.0.1 (loopback)",
        "http://2130706433/": "2130706433 is 127.0.0.1 (loopback)",
        "http://user:pw@example.com": "user name or password",
    }
    for url, why in refused.items():
        added = await cli("endpoints", "add", url, env=env, cwd=tmp_path)
        assert added.returncode != 0, added.stdout
        [line] = added.stderr.splitlines()
        assert line.startswith("Error: endpoint refused: ") and why in line, line
    assert ok(await cli("endpoints", "list", env=env, cwd=tmp_path)).strip() == "no endpoints"
    allowed = ok(
        await cli(
            "endpoints", "add", "http://127.0.0.1:22", "--allow-private", env=env, cwd=tmp_path
        )
    )
    assert "signing secret: whsec_" in allowed
    listed = ok(await cli("endpoints", "list", env=env, cwd=tmp_path))
    assert "http://127.0.0.1:22  (allow-private)" in listed
