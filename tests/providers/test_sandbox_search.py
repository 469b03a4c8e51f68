"""Search like Stripe's: pages (``limit``, ``page``/``next_page``/``has_more``) and a lag.

Stripe's search index trails writes (up to a minute); retrieving by id and listing charges
do not. The sandbox's lag counts on its own clock, which a test moves forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import stripe

from orderguard.providers.base import PaymentOutcome
from orderguard.providers.stripe.adapter import StripeProvider, search_query
from tests.providers.conftest import StartSandbox, charge_request
from tests.providers.harness import API_KEY, SECRET, FakeClock, SyncHttpxClient
from tests.providers.sandbox_client import AUTH, set_faults


@pytest.fixture
def sdk(sandbox_url: str) -> Iterator[stripe.StripeClient]:
    http = SyncHttpxClient()
    yield stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, http_client=http, max_network_retries=0
    )
    http.close()


async def paid(provider: StripeProvider, order_id: str, count: int) -> list[str]:
    """``count`` paid intents for ``order_id``, oldest first."""
    refs = []
    for _ in range(count):
        result = await provider.create_payment(charge_request(order_id=order_id))
        assert result.provider_ref is not None
        refs.append(result.provider_ref)
    return refs


def search(sdk: stripe.StripeClient, order_id: str, **params: Any) -> Any:
    return sdk.v1.payment_intents.search({"query": search_query(order_id), **params})


async def test_search_pages_newest_first_until_has_more_is_false(
    stripe_provider: StripeProvider, sdk: stripe.StripeClient
) -> None:
    refs = await paid(stripe_provider, "ord_pages", 5)
    await paid(stripe_provider, "ord_other", 1)
    seen: list[str] = []
    pages = []
    page = search(sdk, "ord_pages", limit=2)
    while True:
        pages.append((len(page.data), page.has_more, page.next_page is not None))
        seen += [intent.id for intent in page.data]
        if not page.has_more:
            break
        page = search(sdk, "ord_pages", limit=2, page=page.next_page)
    assert pages == [(2, True, True), (2, True, True), (1, False, False)]
    assert seen == list(reversed(refs))
    assert len(search(sdk, "ord_pages").data) == 5  # Stripe's default limit is 10


async def test_the_adapter_follows_every_page(start_sandbox: StartSandbox) -> None:
    with start_sandbox() as url:
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url, page_size=2)
        try:
            refs = await paid(provider, "ord_follow", 5)
            found = await provider.find_payments("ord_follow")
        finally:
            await provider.aclose()
    assert sorted(r.provider_ref or "" for r in found) == sorted(refs)
    assert {r.outcome for r in found} == {PaymentOutcome.SUCCEEDED}


async def test_bad_limits_and_pages_are_refused_as_stripe_refuses_them(
    sandbox_url: str, stripe_provider: StripeProvider, sdk: stripe.StripeClient
) -> None:
    await paid(stripe_provider, "ord_bad", 3)
    for limit in (0, 101, "ten"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            search(sdk, "ord_bad", limit=limit)
        assert refused.value.http_status == 400
        assert refused.value.param == "limit"
    token = search(sdk, "ord_bad", limit=1).next_page
    for page in ("not-a-token", token + "x", search(sdk, "ord_bad2", limit=1).next_page or "x"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            search(sdk, "ord_other_query", limit=1, page=page)
        assert refused.value.param == "page"


async def test_a_new_intent_shows_in_search_only_after_the_lag(
    sandbox_url: str, stripe_provider: StripeProvider, clock: FakeClock
) -> None:
    await set_faults(sandbox_url, search_lag_s=2.0)
    [ref] = await paid(stripe_provider, "ord_lag", 1)

    assert await stripe_provider.find_payments("ord_lag") == []  # not indexed yet
    direct = await stripe_provider.retrieve_payment(ref)  # by id: never lagged
    assert direct.outcome is PaymentOutcome.SUCCEEDED
    charges = await stripe_provider.list_successful_charges(
        datetime.fromtimestamp(clock.now - 60, UTC), datetime.fromtimestamp(clock.now + 60, UTC)
    )
    assert [c.provider_ref for c in charges] == [ref]  # listing charges is not lagged either

    clock.now += 1.5
    assert await stripe_provider.find_payments("ord_lag") == []
    clock.now += 0.5
    [found] = await stripe_provider.find_payments("ord_lag")
    assert (found.provider_ref, found.outcome) == (ref, PaymentOutcome.SUCCEEDED)


async def test_the_lag_also_follows_the_clock_endpoint(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    await set_faults(sandbox_url, search_lag_s=60.0)
    [ref] = await paid(stripe_provider, "ord_lag_admin", 1)
    assert await stripe_provider.find_payments("ord_lag_admin") == []
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as http:
        (await http.post("/_sandbox/clock", json={"advance_s": 60})).raise_for_status()
    assert [r.provider_ref for r in await stripe_provider.find_payments("ord_lag_admin")] == [ref]
