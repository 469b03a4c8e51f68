"""The shopper's order page over HTTP: the token check, the CSRF check, and what it shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from orderguard.catalog import translate
from orderguard.services.pace import Pace
from tests.web.shopfront import (
    ALL_STATES,
    csrf_of,
    order_in,
    shop_and_box,
    status_path,
    token_of,
)


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    async with shop_and_box(tmp_path, sqlite_url) as pair:
        yield pair


async def test_a_wrong_or_missing_token_gives_404_like_a_missing_order(shop) -> None:  # type: ignore[no-untyped-def]
    client = shop[0].client
    order = await order_in(*shop, "paid")
    path = f"/orders/{order['id']}"

    answers = [
        await client.get(path),
        await client.get(path, params={"token": ""}),
        await client.get(path, params={"token": "x" * 43}),
        await client.get(path + "/status", params={"token": "wrong"}),
        await client.get("/orders/ord_nope", params={"token": "x" * 43}),
    ]

    assert [a.status_code for a in answers] == [404] * 5
    bodies = {a.text for a in answers[:3]} | {answers[4].text}
    assert len(bodies) == 1  # a wrong token and a missing order look the same
    assert str(order["id"]) not in answers[0].text
    assert (await client.get(status_path(order))).status_code == 200


async def test_the_page_shows_lines_total_and_no_personal_data(shop) -> None:  # type: ignore[no-untyped-def]
    order = await order_in(*shop, "paid")

    page = await shop[0].client.get(status_path(order))

    assert page.status_code == 200
    assert "T-shirt" in page.text and "39.98 EUR" in page.text
    # the phone (+351 912 345 678) in any grouping; not "912" alone, which a timestamp's
    # microseconds may hold
    phone = ("912345678", "912 345 678", "912 34 56 78", "345 678", "345678")
    for personal in ("Ana", "Silva", "example.com", "Augusta", "1100-048", *phone):
        assert personal not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_every_state_has_its_guidance_in_both_languages(shop, language: str) -> None:  # type: ignore[no-untyped-def]
    client = shop[0].client
    for state in ALL_STATES:
        order = await order_in(*shop, state)
        page = await client.get(status_path(order), headers={"Accept-Language": language})
        assert page.status_code == 200
        assert f'<html lang="{language}">' in page.text
        assert translate(language, f"state.{state}") in page.text, state
        guidance = translate(language, f"next.{state}", why="")
        first_sentence = guidance.split(". ")[0].split("。")[0]
        assert first_sentence in page.text, (state, first_sentence)


async def test_the_language_switch_overrides_accept_language(shop) -> None:  # type: ignore[no-untyped-def]
    order = await order_in(*shop, "payment_unknown")
    path = status_path(order)

    chinese = await shop[0].client.get(path + "&lang=zh-CN", headers={"Accept-Language": "en"})

    assert translate("zh-CN", "next.payment_unknown") in chinese.text
    assert f"{path}&amp;lang=en" in chinese.text  # the switch back


async def test_a_decline_is_explained_in_shopper_words(shop) -> None:  # type: ignore[no-untyped-def]
    order = await order_in(*shop, "payment_failed")

    page = await shop[0].client.get(status_path(order))

    assert translate("en", "why.generic_decline") in page.text
    assert 'id="pay-again"' in page.text


async def test_a_form_post_without_the_csrf_token_is_refused(shop) -> None:  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient = shop[0].client
    order = await order_in(*shop, "payment_failed")
    page = await client.get(status_path(order))
    token = csrf_of(page.text)
    form = {"token": token_of(order)}

    without = await client.post(f"/orders/{order['id']}/report", data={**form, "message": "help"})
    wrong = await client.post(
        f"/orders/{order['id']}/pay",
        data={**form, "csrf": "forged", "method": "pm_card_visa", "key": "k1"},
    )
    with_token = await client.post(
        f"/orders/{order['id']}/report", data={**form, "csrf": token, "message": "help"}
    )

    assert (without.status_code, wrong.status_code) == (403, 403)
    assert with_token.status_code == 303
    detail = await shop[0].order(str(order["id"]))
    assert detail["state"] == "payment_failed"  # the forged payment was not made
    assert len(detail["payment_attempts"]) == 1
    assert detail["flag_reason"] == "shopper reported a problem: help"
    [flagged] = [e for e in detail["timeline"] if e["kind"] == "flagged"]
    assert flagged["cause"] == "shopper"


async def test_paying_again_from_the_form_twice_pays_once(shop) -> None:  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient = shop[0].client
    box = shop[1]
    order = await order_in(*shop, "payment_failed")
    token = csrf_of((await client.get(status_path(order))).text)
    form = {
        "token": token_of(order),
        "csrf": token,
        "method": "pm_card_visa",
        "key": "form-key-1",
    }

    first = await client.post(f"/orders/{order['id']}/pay", data=form)
    second = await client.post(f"/orders/{order['id']}/pay", data=form)

    assert (first.status_code, second.status_code) == (303, 303)
    assert (await shop[0].order(str(order["id"])))["state"] == "paid"
    assert len(await box.charges(str(order["id"]))) == 1


async def test_the_status_endpoint_reports_state_for_the_page_to_poll(shop) -> None:  # type: ignore[no-untyped-def]
    order = await order_in(*shop, "payment_unknown")
    path = status_path(order).replace("?", "/status?")

    answer = await shop[0].client.get(path)

    assert answer.json()["state"] == "payment_unknown"
    assert answer.json()["reason"] is None  # nothing was declined: no reason to give


async def test_the_status_of_a_declined_order_says_why_in_the_pages_words(shop) -> None:  # type: ignore[no-untyped-def]
    order = await order_in(*shop, "payment_failed")  # the sandbox's generic decline
    path = status_path(order).replace("?", "/status?")

    answer = (await shop[0].client.get(path)).json()

    assert (answer["state"], answer["reason"]) == ("payment_failed", "why.generic_decline")
    page = (await shop[0].client.get(status_path(order))).text
    assert str(escape(translate("en", answer["reason"]))) in page  # the page says the same


async def test_the_shops_support_contact_is_shown_when_configured(
    tmp_path: Path, sqlite_url: str
) -> None:
    contact = "help@shop.example"
    async with shop_and_box(tmp_path, sqlite_url, support_contact=contact) as pair:
        order = await order_in(*pair, "payment_unknown")
        page = await pair[0].client.get(status_path(order))
    shown = str(escape(translate("en", "page.support_contact", contact=contact)))
    assert shown in page.text


async def test_a_script_posting_pay_again_with_new_form_keys_reaches_the_provider_once(
    shop,
) -> None:  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient = shop[0].client
    box = shop[1]
    frozen = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    shop[0].container.shopper_pay_pace = Pace(clock=lambda: frozen)  # however slow the host
    order = await order_in(*shop, "payment_failed")
    token = csrf_of((await client.get(status_path(order))).text)
    intents_before = len(await box.intents(str(order["id"])))
    for n in range(30):  # a declining card each time, so the order may always pay again
        form = {
            "token": token_of(order),
            "csrf": token,
            "method": "pm_card_chargeDeclined",
            "key": f"made-up-{n}",
        }
        posted = await client.post(f"/orders/{order['id']}/pay", data=form)
        assert posted.status_code == 303
    assert len(await box.intents(str(order["id"]))) == intents_before + 1
    assert (await shop[0].order(str(order["id"])))["state"] == "payment_failed"


async def test_a_production_shop_never_offers_test_cards_even_with_a_test_key(shop) -> None:  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient = shop[0].client
    order = await order_in(*shop, "payment_failed")
    container = shop[0].container
    container.settings = replace(  # production with a key copied from staging
        container.settings, env="production", stripe_api_key="sk_test_copied_from_staging"
    )
    page = await client.get(status_path(order))
    assert page.status_code == 200
    assert "pm_card_visa" not in page.text and 'id="pay-again"' not in page.text
    form = {"token": token_of(order), "csrf": csrf_of(page.text), "key": "k-prod"}
    paid = await client.post(f"/orders/{order['id']}/pay", data={**form, "method": "pm_card_visa"})
    assert paid.status_code == 400
    async with container.storage() as uow:  # production's API would want a key: read it
        stored = await uow.orders.get(str(order["id"]))
    assert stored is not None
    assert stored.state == "payment_failed"  # no test card paid for it
    assert len(stored.attempts) == 1


async def test_paying_again_while_every_circuit_is_open_says_so_and_charges_nothing(shop) -> None:  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient = shop[0].client
    box = shop[1]
    ticks = iter(range(10))  # each payment from the page an hour after the last: never paced
    start = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    shop[0].container.shopper_pay_pace = Pace(clock=lambda: start + timedelta(hours=next(ticks)))
    order = await order_in(*shop, "payment_failed")
    breaker = shop[0].container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    token = csrf_of((await client.get(status_path(order))).text)
    form = {"token": token_of(order), "csrf": token, "method": "pm_card_visa", "key": "k-out"}

    busy = await client.post(f"/orders/{order['id']}/pay", data=form)

    assert busy.status_code == 503
    assert str(escape(translate("en", "page.pay_unavailable"))) in busy.text
    detail = await shop[0].order(str(order["id"]))
    assert (detail["state"], len(detail["payment_attempts"])) == ("payment_failed", 1)
    breaker.record_success()  # the provider is back: the same form now pays, once
    assert (await client.post(f"/orders/{order['id']}/pay", data=form)).status_code == 303
    assert (await shop[0].order(str(order["id"])))["state"] == "paid"
    assert len(await box.charges(str(order["id"]))) == 1


async def test_the_page_offers_only_methods_a_configured_account_takes(shop) -> None:  # type: ignore[no-untyped-def]
    # Alipay and WeChat Pay are registered, but no app of theirs is configured here: their
    # methods would be refused, so the page does not offer them; the sandbox's cards it does.
    order = await order_in(*shop, "payment_failed")
    page = await shop[0].client.get(status_path(order))
    assert page.status_code == 200
    for card in ("pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired"):
        assert f'value="{card}"' in page.text
    assert "alipay_" not in page.text and "wechatpay_" not in page.text
