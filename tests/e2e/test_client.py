"""``orderguard.client`` against a real ``orderguard serve`` on PostgreSQL, charging
through serve's in-process sandbox, reached directly and through a TCP proxy that loses
answers. The database (read with plain SQL) is the oracle for how many orders, attempts
and refunds exist; the client's own results are never trusted to count them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

from orderguard.client import (
    Address,
    AsyncOrderguardClient,
    AuthenticationError,
    ConflictError,
    Customer,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    Item,
    NewOrder,
    NoAnswerError,
    NotFoundError,
    Order,
    OrderguardClient,
    OrderReceipt,
    PermissionDeniedError,
    RedirectAction,
    RefundSummary,
    RetryPolicy,
    WebhookVerificationError,
    verify_webhook,
)
from tests.conftest import pg_clone
from tests.e2e.procs import Server, clean_env, run_cli
from tests.e2e.tcp_proxy import DroppingProxy, dropping_proxy
from tests.e2e.timeline_check import timelines_checked

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"
#: Quick retries: these tests lose answers on purpose and should not wait long for them.
QUICK = RetryPolicy(attempts=4, initial_s=0.05, max_wait_s=0.2, deadline_s=20.0)
#: 2 T-shirts at 19.99 and a mug at 8.50.
TOTAL = 2 * 1999 + 850


@dataclass
class Hooks:
    """A merchant's webhook receiver: every delivery's headers and raw body."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def find(self, kind: str, order_id: str, within_s: float = 60) -> tuple[dict[str, str], bytes]:
        """The first delivery of event ``kind`` about ``order_id`` (waiting for it)."""
        wanted = (f'"order_id":"{order_id}"'.encode(), f'"type":"{kind}"'.encode())
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for headers, body in list(self.received):
                if all(w in body for w in wanted):
                    return headers, body
            time.sleep(0.1)
        raise AssertionError(f"no {kind} for {order_id} among {len(self.received)} deliveries")


@contextmanager
def webhook_receiver() -> Iterator[Hooks]:
    """A plain HTTP server on loopback answering 204 to every POST, keeping it."""
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            hooks.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Stack:
    """orderguard serve on its own PostgreSQL database, a proxy in front of it, a webhook
    receiver, and the secrets the CLI printed."""

    server: Server
    proxy: DroppingProxy
    hooks: Hooks
    database_url: str
    admin_key: str
    writer_key: str
    refunder_key: str
    webhook_secret: str

    def client(self, *, through_proxy: bool = False, key: str | None = None) -> OrderguardClient:
        url = self.proxy.url if through_proxy else self.server.url
        return OrderguardClient(url, key or self.admin_key, retry=QUICK)

    def async_client(self, *, through_proxy: bool = False) -> AsyncOrderguardClient:
        url = self.proxy.url if through_proxy else self.server.url
        return AsyncOrderguardClient(url, self.admin_key, retry=QUICK)

    def rows(self, query: str, *args: object) -> list[tuple[object, ...]]:
        """The oracle: plain SQL on the server's database."""
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, args).fetchall()  # type: ignore[arg-type]

    def orders_of(self, email: str) -> list[tuple[object, ...]]:
        """(id, state) of every order the shopper ``email`` has on the server."""
        return self.rows("SELECT id, state FROM orders WHERE customer_email = %s", email)


def _cli_secret(env: dict[str, str], cwd: Path, label: str, *args: str) -> str:
    """Run ``orderguard ARGS`` and return the secret it printed after ``label``."""
    done = run_cli(*args, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(label)]
    return line.removeprefix(label).strip()


@pytest.fixture(scope="module")
def stack(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One server for the module (each test uses its own shoppers and keys), its public
    address the proxy's; keys and the webhook endpoint made with the CLI."""
    cwd = tmp_path_factory.mktemp("client")
    with (
        pg_clone(pg_template) as url,
        timelines_checked(url),
        webhook_receiver() as hooks,
    ):
        server = Server(env={}, cwd=cwd)
        with dropping_proxy(("127.0.0.1", server.port)) as proxy:
            env = clean_env(url, ORDERGUARD_PUBLIC_URL=proxy.url, ORDERGUARD_OUTBOX_BACKOFF_S="0.2")
            key = "secret:"
            found = Stack(
                server,
                proxy,
                hooks,
                url,
                admin_key=_cli_secret(env, cwd, key, "keys", "create", "shop", "--scope", "admin"),
                writer_key=_cli_secret(
                    env, cwd, key, "keys", "create", "checkout", "--scope", "orders:write"
                ),
                refunder_key=_cli_secret(
                    env, cwd, key, "keys", "create", "finance", "--scope", "payments:refund"
                ),
                webhook_secret=_cli_secret(
                    env, cwd, "signing secret:", "endpoints", "add", hooks.url, "--allow-private"
                ),
            )
            server.env = env
            server.start()
            try:
                yield found
            finally:
                server.stop()


@pytest.fixture(autouse=True)
def no_drops_left(stack: Stack) -> Iterator[None]:
    """Answers a test meant to lose and its client never asked for are not lost later."""
    yield
    stack.proxy.drop_next(0)


def checkout(method: str | None = VISA, **changes: object) -> NewOrder:
    """A checkout by a shopper of its own (a unique e-mail address, to count by)."""
    order = NewOrder(
        currency="EUR",
        items=[
            Item(sku="TEE-M", name="T-shirt", quantity=2, unit_amount=1999),
            Item(sku="MUG", name="Mug", quantity=1, unit_amount=850),
        ],
        customer=Customer(
            email=f"shopper-{uuid.uuid4().hex[:10]}@example.com",
            name="Ana Silva",
            shipping_address=Address(
                line1="Rua Augusta 1", city="Lisboa", postal_code="1100-048", country="PT"
            ),
        ),
        payment_method=method,
    )
    return order.model_copy(update=changes)


# --- placing and paying --------------------------------------------------------------------


def test_an_order_placed_with_the_sandbox_card_is_paid_and_reads_back(stack: Stack) -> None:
    order = checkout()
    with stack.client() as client:
        placed = client.create_order(order)
        settled = client.wait_for_settlement(placed.id, timeout_s=20)
        page = client.list_orders(state="paid", limit=200)
    assert isinstance(placed, Order)
    assert (placed.state, placed.amount_total, placed.replayed) == ("paid", TOTAL, False)
    assert settled.outcome == "paid" and settled.order.id == placed.id
    assert [a.state for a in settled.order.payment_attempts] == ["succeeded"]
    assert settled.order.customer.email == order.customer.email
    assert placed.id in [o.id for o in page.data]
    assert stack.orders_of(order.customer.email) == [(placed.id, "paid")]


async def test_the_async_client_places_and_pays_an_order(stack: Stack) -> None:
    order = checkout()
    async with stack.async_client() as client:
        placed = await client.create_order(order)
        settled = await client.wait_for_settlement(placed.id, timeout_s=20)
        listed = [o.id async for o in client.iter_orders(state="paid", page_size=2)]
    assert (placed.state, settled.outcome) == ("paid", "paid")
    assert placed.id in listed  # found across pages of two
    assert stack.orders_of(order.customer.email) == [(placed.id, "paid")]


def test_a_key_without_orders_read_gets_a_receipt_without_personal_data(stack: Stack) -> None:
    with stack.client(key=stack.writer_key) as client:
        placed = client.create_order(checkout())
    assert isinstance(placed, OrderReceipt) and not isinstance(placed, Order)
    assert placed.state == "paid" and "/orders/" in placed.status_url


def test_a_card_asking_for_3d_secure_settles_as_action_required_with_the_redirect(
    stack: Stack,
) -> None:
    with stack.client() as client:
        placed = client.create_order(checkout("pm_card_authenticationRequired"))
        waiting = client.wait_for_settlement(placed.id, timeout_s=20)
    assert (placed.state, waiting.outcome, waiting.settled) == (
        "action_required",
        "action_required",
        False,
    )
    assert isinstance(waiting.order.next_action, RedirectAction)
    assert waiting.order.next_action.redirect_url.startswith("http")


# --- answers lost on the way back ------------------------------------------------------------


def test_a_lost_answer_is_retried_with_the_same_key_and_makes_one_order(stack: Stack) -> None:
    order = checkout()
    stack.proxy.drop_next(1, matching="POST /v1/orders ")
    before, dropped = stack.proxy.count("POST /v1/orders "), stack.proxy.dropped
    with stack.client(through_proxy=True) as client:
        placed = client.create_order(order)
    assert stack.proxy.dropped == dropped + 1  # the server answered, the client never saw it
    assert stack.proxy.count("POST /v1/orders ") == before + 2, stack.proxy.requests
    assert placed.replayed and placed.state == "paid"
    assert stack.orders_of(order.customer.email) == [(placed.id, "paid")]
    attempts = stack.rows("SELECT state FROM payment_attempts WHERE order_id = %s", placed.id)
    assert attempts == [("succeeded",)]


async def test_the_async_client_retries_a_lost_answer_with_the_same_key(stack: Stack) -> None:
    order = checkout()
    stack.proxy.drop_next(2, matching="POST /v1/orders ")
    async with stack.async_client(through_proxy=True) as client:
        placed = await client.create_order(order, idempotency_key=f"cart-{uuid.uuid4()}")
    assert placed.replayed and placed.state == "paid"
    assert stack.orders_of(order.customer.email) == [(placed.id, "paid")]


def test_when_no_answer_ever_comes_the_error_holds_the_key_that_finds_the_order(
    stack: Stack,
) -> None:
    order = checkout()
    stack.proxy.drop_next(QUICK.attempts, matching="POST /v1/orders ")
    with stack.client(through_proxy=True) as client:
        with pytest.raises(NoAnswerError) as lost:
            client.create_order(order, idempotency_key="checkout-lost-1-" + uuid.uuid4().hex)
        stack.proxy.drop_next(0)  # the connection is back
        key = lost.value.idempotency_key
        assert key is not None and key.startswith("checkout-lost-1-")
        assert lost.value.attempts == QUICK.attempts
        [(order_id, state)] = stack.orders_of(order.customer.email)  # it went through
        again = client.create_order(order, idempotency_key=key)  # later, the same checkout
    assert (again.id, again.state, again.replayed) == (order_id, state, True)
    assert len(stack.orders_of(order.customer.email)) == 1


def test_a_post_without_a_key_is_not_sent_again_once_it_left(stack: Stack) -> None:
    with stack.client() as client:
        placed = client.create_order(checkout(method=None))
    stack.proxy.drop_next(1, matching=f"POST /v1/orders/{placed.id}/cancel ")
    before = stack.proxy.count("POST /v1/orders/")
    with stack.client(through_proxy=True) as client, pytest.raises(NoAnswerError) as lost:
        client.cancel(placed.id)
    assert lost.value.idempotency_key is None and lost.value.attempts == 1
    assert stack.proxy.count("POST /v1/orders/") == before + 1
    assert stack.rows("SELECT state FROM orders WHERE id = %s", placed.id) == [("cancelled",)]


# --- decline, pay again, refund --------------------------------------------------------------


def test_a_declined_order_settles_as_failed_and_pays_again_once(stack: Stack) -> None:
    with stack.client() as client:
        placed = client.create_order(checkout(DECLINED))
        failed = client.wait_for_settlement(placed.id, timeout_s=20)
        paid = client.pay_again(placed.id, VISA)
        with pytest.raises(ConflictError) as paid_already:
            client.pay_again(placed.id, VISA)  # another payment for a paid order
    assert (placed.state, failed.outcome) == ("payment_failed", "failed")
    assert failed.order.payment_attempts[0].decline_code
    assert paid.state == "paid" and not paid.replayed
    assert paid_already.value.slug == "payment-not-allowed"
    assert paid_already.value.order_id == placed.id
    attempts = stack.rows(
        "SELECT state FROM payment_attempts WHERE order_id = %s ORDER BY seq", placed.id
    )
    assert attempts == [("failed",), ("succeeded",)]


def test_a_refund_is_made_once_per_key_and_never_beyond_what_was_paid(stack: Stack) -> None:
    with stack.client() as client:
        placed = client.create_order(checkout())
        part = client.refund(placed.id, amount=1000, reason="mug broken", idempotency_key="r-1")
        repeated = client.refund(placed.id, amount=1000, reason="mug broken", idempotency_key="r-1")
        with pytest.raises(ConflictError) as too_much:
            client.refund(placed.id, amount=TOTAL)
        rest = client.refund(placed.id)
        final = client.get_order(placed.id)
    assert (part.refund.amount, part.replayed) == (1000, False)
    assert (repeated.refund.id, repeated.replayed) == (part.refund.id, True)
    assert part.order.amount_refundable == TOTAL - 1000
    assert too_much.value.slug == "refund-exceeds-refundable"
    assert too_much.value.extensions["amount_refundable"] == TOTAL - 1000
    assert rest.refund.amount == TOTAL - 1000
    assert final.state == "refunded" and final.amount_refundable == 0
    refunds = stack.rows(
        "SELECT amount FROM refunds WHERE order_id = %s ORDER BY amount", placed.id
    )
    assert refunds == [(1000,), (TOTAL - 1000,)]


def test_a_refund_only_key_gets_the_refund_and_totals_without_personal_data(
    stack: Stack,
) -> None:
    with stack.client() as client:
        placed = client.create_order(checkout())
    with stack.client(key=stack.refunder_key) as finance:
        result = finance.refund(placed.id, amount=500)
        with pytest.raises(PermissionDeniedError) as no_reading:
            finance.get_order(placed.id)
    assert isinstance(result.order, RefundSummary) and not isinstance(result.order, Order)
    assert (result.refund.amount, result.order.amount_refundable) == (500, TOTAL - 500)
    assert no_reading.value.slug == "missing-scope"


# --- what a stranger can send: typed errors, never retried -----------------------------------


def test_an_invalid_order_is_a_typed_error_with_every_path_and_is_sent_once(stack: Stack) -> None:
    bad = checkout(items=[Item(sku="TEE-M", name="T-shirt", quantity=0, unit_amount=-1)])
    before = stack.proxy.count("POST /v1/orders ")
    with stack.client(through_proxy=True) as client, pytest.raises(InvalidRequestError) as err:
        client.create_order(bad)
    assert err.value.status == 422 and err.value.slug == "validation-error"
    paths = {tuple(e.loc) for e in err.value.errors}
    assert paths == {("items", 0, "quantity"), ("items", 0, "unit_amount")}
    assert err.value.request_id
    assert stack.proxy.count("POST /v1/orders ") == before + 1
    assert stack.orders_of(bad.customer.email) == []


async def test_the_async_client_raises_the_same_typed_errors(stack: Stack) -> None:
    async with stack.async_client() as client:
        with pytest.raises(InvalidRequestError) as invalid:
            await client.create_order(checkout(currency="EURO"))
        with pytest.raises(NotFoundError):
            await client.get_order("ord_does_not_exist")
    assert [e.loc for e in invalid.value.errors] == [["currency"]]


def test_a_key_reused_for_another_order_is_an_idempotency_conflict(stack: Stack) -> None:
    key = f"checkout-{uuid.uuid4()}"
    with stack.client() as client:
        first = client.create_order(checkout(), idempotency_key=key)
        with pytest.raises(IdempotencyKeyReusedError) as reused:
            client.create_order(checkout(), idempotency_key=key)
    assert reused.value.status == 422 and reused.value.idempotency_key == key
    assert first.state == "paid"


def test_a_wrong_api_key_and_an_odd_order_id_are_refused_as_such(stack: Stack) -> None:
    with OrderguardClient(stack.server.url, "og_sk_wrong", retry=QUICK) as stranger:
        with pytest.raises(AuthenticationError) as refused:
            stranger.get_order("ord_x")
    with stack.client() as client, pytest.raises(NotFoundError):
        client.get_order("../orders?x=1")  # quoted into one path segment, not another route
    assert refused.value.status == 401


# --- merchant webhooks -----------------------------------------------------------------------


def test_a_real_signed_delivery_verifies_and_a_flipped_byte_does_not(stack: Stack) -> None:
    with stack.client() as client:
        placed = client.create_order(checkout())
    headers, body = stack.hooks.find("order.paid", placed.id)
    event = verify_webhook(body, headers, stack.webhook_secret)
    assert (event.type, event.order_id, event.id) == (
        "order.paid",
        placed.id,
        headers["webhook-id"],
    )
    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        verify_webhook(bytes(flipped), headers, stack.webhook_secret)
    other = {**headers, "webhook-id": headers["webhook-id"] + "x"}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, other, stack.webhook_secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, "whsec_" + "A" * 43 + "=")
    sent = int(headers["webhook-timestamp"])
    with pytest.raises(WebhookVerificationError):  # replayed an hour later
        verify_webhook(body, headers, stack.webhook_secret, now=sent + 3600)
