"""Shopper email end to end against a real SMTP server on loopback (aiosmtpd): a message
per emailed event, in English and Simplified Chinese, each with the status page link,
plain text and HTML, none sent twice; templates a shop overrides; SMTP auth."""

from __future__ import annotations

import asyncio
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from orderguard.api.render import status_url
from orderguard.api.server import free_port
from orderguard.config import Settings
from orderguard.domain.delivery import EMAIL_SINK, EMAILED_EVENTS
from orderguard.domain.events import EventType
from orderguard.domain.order import Order
from orderguard.outbox.configured import build_relay
from orderguard.outbox.email import BadSmtpUrl, SmtpServer
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.unit_of_work import SqlStorage
from tests.outbox_kit import (  # noqa: F401 (sql is a fixture)
    CANCELLED_LIFE,
    FULL_LIFE,
    Mailbox,
    committed_ids,
    live,
    relay_until,
    settings,
    smtp_server,
    sql_storage,
)

PUBLIC = "https://shop.example"


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def test_every_emailed_event_reaches_the_shopper_once_in_their_language(
    sql: SqlStorage,
) -> None:
    orders = {
        (locale, life): await live(sql, locale=locale, life=life)
        for locale in ("en", "zh-CN")
        for life in (FULL_LIFE, CANCELLED_LIFE)
    }
    emailed = {o.id: await committed_ids(sql, o.id) for o in orders.values()}
    async with sql.reader() as uow:
        wanted = [
            e
            for o in orders.values()
            for e in await uow.orders.events(o.id)
            if e.type in EMAILED_EVENTS
        ]
    assert {e.type for e in wanted} == EMAILED_EVENTS
    with smtp_server() as box:
        relay = build_relay(settings(smtp_url=box.url, public_url=PUBLIC), sql)
        try:
            await relay_until(relay, lambda: len(box.received()) >= len(wanted))
            for _ in range(3):  # later rounds send nothing again
                await relay.run_once(owner="relay-test")
            await asyncio.sleep(0.2)
        finally:
            await relay.aclose()
        messages = box.received()
    by_event = Counter(str(m["X-Orderguard-Event-Id"]) for m in messages)
    assert by_event == Counter(e.id for e in wanted)  # each exactly once, nothing else
    for (locale, _), order in orders.items():
        mine = [m for m in messages if m["To"] == order.customer.email]
        link = status_url(PUBLIC, order)
        for message in (m for m in mine if m["X-Orderguard-Event-Id"] in emailed[order.id]):
            text, html = parts(message)
            assert link in text and link.replace("&", "&amp;") in html
            assert message["Content-Language"] == locale
            if locale == "zh-CN":
                assert "订单" in str(message["Subject"]) and "订单" in text
            else:
                assert "order" in str(message["Subject"]).lower() and "order" in text
    failed = [m for m in messages if "declined" in parts(m)[0] or "被拒绝" in parts(m)[0]]
    assert len(failed) == 2 and all(
        "another" in parts(m)[0] or "其他" in parts(m)[0] for m in failed
    )


async def sent_with_shop_templates(
    sql: SqlStorage, folder: Path, **files: str
) -> tuple[Order, EmailMessage]:
    """The one email of a new order, with the shop's English ``files`` (name → source)."""
    (folder / "en").mkdir()
    for name, source in files.items():
        (folder / "en" / name).write_text(source)
    order = await live(sql, life=())
    with smtp_server() as box:
        relay = build_relay(
            settings(smtp_url=box.url, email_template_dir=str(folder), public_url=PUBLIC), sql
        )
        try:
            await relay_until(relay, lambda: len(box.received()) == 1)
        finally:
            await relay.aclose()
        (message,) = box.received()
    return order, message


async def test_a_shops_own_template_replaces_the_shipped_one(
    sql: SqlStorage, tmp_path: Path
) -> None:
    order, message = await sent_with_shop_templates(
        sql,
        tmp_path,
        **{
            "order.received.txt": "Subject: Thanks from Tea Shop ({{ order_id }})\n\n"
            "Hi {{ name }}: {{ status_url }}\n",
            "order.received.html": "<p>Tea Shop {{ status_url }}</p>",
        },
    )
    assert message["Subject"] == f"Thanks from Tea Shop ({order.id})"
    text, html = parts(message)
    assert text.strip() == f"Hi Ana Silva: {status_url(PUBLIC, order)}"
    assert "Tea Shop" in html


class _Accounts:
    def __call__(
        self, server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"shop", b"s3cret")
        return AuthResult(success=ok)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_authentication_is_used_and_a_refusal_is_retried_not_lost(
    sql: SqlStorage,
) -> None:
    order = await live(sql, life=())
    port = free_port()
    box = Mailbox("127.0.0.1", port)
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=_Accounts(),
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        wrong = build_relay(settings(smtp_url=f"smtp://shop:nope@127.0.0.1:{port}"), sql)
        await wrong.run_once(owner="relay-test")
        await wrong.aclose()
        (delivery,) = await OutboxSupport(sql).deliveries_of_order(order.id)
        assert delivery.sink == EMAIL_SINK and delivery.state == "pending"
        assert delivery.attempts == 1 and delivery.last_error
        assert box.received() == []
        right = build_relay(settings(smtp_url=f"smtp://shop:s3cret@127.0.0.1:{port}"), sql)
        await asyncio.sleep(0.15)  # past the backoff
        await relay_until(right, lambda: len(box.received()) == 1)
        await right.aclose()
    finally:
        controller.stop()
    assert box.received()[0]["X-Orderguard-Event-Id"] == (await committed_ids(sql, order.id))[0]


def test_smtp_urls_name_tls_starttls_and_credentials() -> None:
    plain = SmtpServer.parse("smtp://user%40shop:p%3Ass@mail.example:2525?starttls=true")
    assert (plain.host, plain.port, plain.username, plain.password) == (
        "mail.example",
        2525,
        "user@shop",
        "p:ss",
    )
    assert (plain.tls, plain.starttls) == (False, True)
    secure = SmtpServer.parse("smtps://mail.example")
    assert (secure.port, secure.tls, secure.starttls) == (465, True, False)
    assert SmtpServer.parse("smtp://localhost").port == 587
    for bad in ("http://mail.example", "smtp://", "smtp://h:notaport"):
        with pytest.raises(BadSmtpUrl):
            SmtpServer.parse(bad)


def test_every_emailed_event_has_templates_in_both_languages() -> None:
    from orderguard.outbox.templates import EmailTemplates

    templates = EmailTemplates()
    context = {
        "order_id": "ord_1",
        "name": "N",
        "amount": "1.00 EUR",
        "merchant_reference": None,
        "status_url": "https://x/orders/ord_1?token=t",
        "action_url": None,
    }
    for event in EventType:
        for locale in ("en", "zh-CN"):
            if event in EMAILED_EVENTS:
                rendered = templates.render(event, locale, context)
                assert rendered.subject and "https://x/orders/ord_1?token=t" in rendered.text
    assert Settings.load({}).smtp_url is None  # off by default


async def test_a_shop_template_that_reaches_outside_the_sandbox_is_refused_and_the_email_still_goes(
    sql: SqlStorage, tmp_path: Path
) -> None:
    order, message = await sent_with_shop_templates(
        sql,
        tmp_path,
        **{
            "order.received.txt": "Subject: {{ ''.__class__.__mro__[1].__subclasses__() }}\n\n"
            "Hi {{ name }}\n",
            "order.received.html": "<p>Hi {{ name | safe }}</p>",
        },
    )
    assert "object" not in str(message["Subject"]) and order.id in str(message["Subject"])
    text, html = parts(message)
    assert status_url(PUBLIC, order) in text  # the shipped template's message
    assert "Hi Ana Silva" not in html
