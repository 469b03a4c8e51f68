"""``orderguard demo``: the service on a fresh database, driven over real HTTP.

It places orders the way a checkout does (with retries that reuse the Idempotency-Key),
sends a few bad requests, and shows what was stored. Exits 0 only when every answer was
what the guarantees promise.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from orderguard.api.app import create_app
from orderguard.api.server import running_server
from orderguard.config import Settings
from orderguard.domain.money import Money

_SHOPPERS = [
    (
        "ana@example.com",
        "Ana Silva",
        "+351 912 345 678",
        "Rua Augusta 1",
        "Lisboa",
        "1100-048",
        "PT",
        "EUR",
    ),
    (
        "kenji@example.jp",
        "Kenji Sato",
        "090-1234-5678",
        "1-1 Chiyoda",
        "Tokyo",
        "100-0001",
        "JP",
        "JPY",
    ),
    ("li.na@example.cn", "李娜", "138 0013 8000", "人民路 1 号", "上海", "200000", "CN", "CNY"),
    (
        "omar@example.kw",
        "Omar Ali",
        "+965 5000 0000",
        "Gulf Road 5",
        "Kuwait City",
        "13001",
        "KW",
        "KWD",
    ),
]


def _order(index: int, method: str | None = "pm_card_visa") -> dict[str, Any]:
    email, name, phone, line1, city, postal, country, currency = _SHOPPERS[index % len(_SHOPPERS)]
    return {
        "merchant_reference": f"DEMO-{index + 1:04d}",
        "currency": currency,
        "items": [
            {"sku": "TEE-M", "name": "T-shirt", "quantity": 1 + index % 3, "unit_amount": 1999},
            {"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": 850},
        ],
        "customer": {
            "email": email,
            "name": name,
            "phone": phone,
            "shipping_address": {
                "line1": line1,
                "city": city,
                "postal_code": postal,
                "country": country,
            },
        },
        **({"payment": {"method": method}} if method else {}),
    }


async def run_demo(*, count: int, database_url: str | None) -> int:
    """Run the demo; return the process exit code."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="orderguard-demo-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        settings = Settings(database_url=url, sandbox_db=str(Path(tmp) / "sandbox.db"))
        async with running_server(create_app(settings=settings)) as base:
            console.print(f"[bold]orderguard demo[/] — server at {base}, database {url}")
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                problems = await _place_orders(client, count, console)
                problems += await _pay_again(client, console)
                problems += await _show_refusals(client, console)
                await _show_orders(client, console)
    if problems:
        console.print(f"[red bold]{problems} answer(s) broke a guarantee[/]")
        return 1
    console.print("[green bold]every answer was as promised[/]")
    return 0


async def _place_orders(client: httpx.AsyncClient, count: int, console: Console) -> int:
    problems = 0
    for index in range(count):
        key = str(uuid.uuid4())
        first = await client.post(
            "/v1/orders", json=_order(index), headers={"Idempotency-Key": key}
        )
        retry = await client.post(
            "/v1/orders", json=_order(index), headers={"Idempotency-Key": key}
        )
        same = first.status_code == 201 and retry.json().get("id") == first.json().get("id")
        same = same and first.json().get("state") == "paid"
        replayed = retry.headers.get("Idempotent-Replayed") == "true"
        if not (same and replayed):
            problems += 1
            console.print(f"[red]order {index}: {first.status_code} then {retry.status_code}[/]")
    console.print(
        f"placed and paid {count} orders, each retried once with its key: "
        f"{count - problems} replayed the same paid order, none charged twice"
    )
    return problems


async def _pay_again(client: httpx.AsyncClient, console: Console) -> int:
    declined = await client.post(
        "/v1/orders",
        json=_order(80, "pm_card_chargeDeclined"),
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    order = declined.json()
    again = await client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"payment": {"method": "pm_card_visa"}},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    console.print(
        f"a declined card left order {order['id']} {order['state']} "
        f"({order['payment_attempts'][0]['decline_code']}); paying again with another "
        f"card made it {again.json()['state']}"
    )
    return int((order["state"], again.json()["state"]) != ("payment_failed", "paid"))


async def _show_refusals(client: httpx.AsyncClient, console: Console) -> int:
    table = Table(title="Bad requests are refused and change nothing (G2, G9)")
    table.add_column("request")
    table.add_column("status")
    table.add_column("problem", overflow="fold")
    reused = str(uuid.uuid4())
    await client.post("/v1/orders", json=_order(90), headers={"Idempotency-Key": reused})
    bad = _order(91)
    bad["items"][0]["quantity"] = 0
    bad["customer"]["email"] = "not-an-email"
    cases = [
        ("no Idempotency-Key", client.post("/v1/orders", json=_order(92)), 400),
        (
            "same key, other body",
            client.post("/v1/orders", json=_order(93), headers={"Idempotency-Key": reused}),
            422,
        ),
        (
            "invalid values",
            client.post("/v1/orders", json=bad, headers={"Idempotency-Key": str(uuid.uuid4())}),
            422,
        ),
        (
            "duplicate merchant_reference",
            client.post(
                "/v1/orders", json=_order(0), headers={"Idempotency-Key": str(uuid.uuid4())}
            ),
            409,
        ),
        ("unknown order", client.get("/v1/orders/ord_missing"), 404),
    ]
    problems = 0
    for label, call, expected in cases:  # each a coroutine, awaited in turn
        response = await call
        problem = response.json()
        detail = problem.get("detail", "")
        if problem.get("errors"):
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in problem["errors"]
            )
        table.add_row(label, str(response.status_code), detail)
        problems += response.status_code != expected
    console.print(table)
    return problems


async def _show_orders(client: httpx.AsyncClient, console: Console) -> None:
    page = (await client.get("/v1/orders", params={"limit": 10})).json()
    table = Table(title="Orders stored (newest first)")
    for column in ("id", "reference", "state", "total", "country", "phone (E.164)"):
        table.add_column(column)
    for order in page["data"]:
        table.add_row(
            order["id"],
            order["merchant_reference"] or "-",
            order["state"],
            Money(order["amount_total"], order["currency"]).format(),
            order["customer"]["shipping_address"]["country"],
            order["customer"]["phone"] or "-",
        )
    console.print(table)


def _where(error: dict[str, Any]) -> str:
    return ".".join(map(str, error["loc"])) + ": "
