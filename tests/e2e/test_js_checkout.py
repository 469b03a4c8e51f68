"""The checkout script (clients/js, built) against a real orderguard over HTTP: the shapes
it reads (the order's answer, ``next_action``, the status endpoint and its ``reason``) are
the server's, a lost answer still makes one order, and a decline says why and pays again.

Needs Node and ``clients/js/dist`` (``make js-test`` builds it; ``make test`` runs that
first): without them the test skips on a laptop and fails in CI.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orderguard.catalog import translate
from orderguard.providers.stripe.testcards import DECLINED, NEEDS_AUTHENTICATION, SUCCEEDS
from tests.conftest import service_missing
from tests.e2e.payment_harness import Sandbox, Shop
from tests.factories import order_body
from tests.web.shopfront import shop_and_box

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "clients" / "js" / "dist" / "checkout.js"
DRIVER = Path(__file__).with_name("js") / "checkout_driver.mjs"
Pair = tuple[Shop, Sandbox]


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, sqlite_url, over_http=True) as pair:
        yield pair


async def drive(shop: Shop, scenario: str, method: str) -> dict[str, Any]:
    """Run the driver (the server answers meanwhile: same event loop, so not blocking)."""
    node = shutil.which("node")
    if node is None or not MODULE.exists():
        service_missing("the checkout script", "needs node and clients/js/dist (make js-test)")
    body = order_body(payment={"method": method})
    process = await asyncio.create_subprocess_exec(
        node,
        str(DRIVER),
        MODULE.as_uri(),
        shop.base_url,
        scenario,
        json.dumps(body),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]  # not the whole minified module
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_an_answer_lost_after_the_order_was_made_still_makes_one_paid_order(
    shop: Pair,
) -> None:
    result = await drive(shop[0], "lost_answer", SUCCEEDS)

    assert result["first"]["status"] == "paid"
    order_id = result["first"]["orderId"]
    assert await shop[0].order_ids() == [order_id]
    assert [p["replayed"] for p in result["posts"]] == [False, True]  # made, then replayed
    assert len({p["key"] for p in result["posts"]}) == 1
    assert len(await shop[1].charges(order_id)) == 1


async def test_a_decline_says_why_in_the_pages_words_and_pays_again(shop: Pair) -> None:
    result = await drive(shop[0], "declined", DECLINED)

    failed = result["first"]
    assert (failed["status"], failed["reasonKey"]) == ("failed", "why.generic_decline")
    assert failed["reason"] == translate("en", "why.generic_decline")
    assert failed["payable"] is True
    assert result["again"]["status"] == "paid"
    order_id = failed["orderId"]
    assert await shop[0].order_ids() == [order_id]
    order = await shop[0].order(order_id)
    assert order["state"] == "paid"
    assert [a["state"] for a in order["payment_attempts"]] == ["failed", "succeeded"]
    assert len(await shop[1].charges(order_id)) == 1
    pays = [p for p in result["posts"] if p["url"].endswith("/payments")]
    assert len(pays) == 1 and pays[0]["key"] != result["posts"][0]["key"]


async def test_3ds_opens_the_banks_page_and_is_confirming_meanwhile(shop: Pair) -> None:
    result = await drive(shop[0], "three_ds", NEEDS_AUTHENTICATION)

    outcome = result["first"]
    order = await shop[0].order(outcome["orderId"])
    assert order["state"] == "action_required"
    assert result["opened"] == [order["next_action"]["redirect_url"]]
    assert outcome["status"] == "confirming"
    assert outcome["nextAction"] == order["next_action"]
    assert outcome["title"] == translate("en", "state.action_required")
