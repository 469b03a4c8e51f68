"""The blocking client, for shop back-ends that are not async (Django, Flask, scripts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from orderguard.client import calls
from orderguard.client.calls import AfterAction, Call, Placed
from orderguard.client.models import NewOrder, Order, OrderDetail, OrderPage, RefundResult
from orderguard.client.retry import RetryPlan, RetryPolicy
from orderguard.client.settlement import Settlement, outcome_of, poll_wait_s

T = TypeVar("T")


class OrderguardClient:
    """orderguard's API over HTTP: every order-creating or refunding call carries an
    Idempotency-Key that is the same on each retry, and only replay-safe requests are
    retried (see :mod:`orderguard.client.retry`). Use it as a context manager, or
    :meth:`close` it."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url, headers=calls.client_headers(api_key), transport=transport
        )
        self._sleep, self._clock = sleep, clock

    def create_order(
        self, order: NewOrder | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Placed:
        """Place an order (and charge it when it names a payment method). Pass the key you
        keep for this checkout: a call repeated with it, now or after a crash, answers the
        same order. Without one, a key is made for this call and used on all its retries."""
        return self.send(calls.create_order(order, idempotency_key))

    def get_order(self, order_id: str) -> OrderDetail:
        """The order with its attempts, refunds and timeline (needs ``orders:read``)."""
        return self.send(calls.get_order(order_id))

    def list_orders(
        self,
        *,
        state: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OrderPage:
        """One page of orders, newest first."""
        return self.send(
            calls.list_orders(
                state=state,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_orders(self, *, state: str | None = None, page_size: int = 50) -> Iterator[Order]:
        """Every order (of ``state``), newest first, fetching pages as needed."""
        cursor: str | None = None
        while True:
            page = self.list_orders(state=state, limit=page_size, cursor=cursor)
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def pay_again(
        self, order_id: str, payment_method: str, *, idempotency_key: str | None = None
    ) -> Placed:
        """A new payment attempt for a declined order, with another method."""
        return self.send(calls.pay_again(order_id, payment_method, idempotency_key))

    def refund(
        self,
        order_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        """Refund ``amount`` minor units (all that is left without it); one key is one
        refund (needs ``payments:refund``)."""
        return self.send(calls.refund(order_id, amount, reason, idempotency_key))

    def recheck(self, order_id: str) -> AfterAction:
        """Ask the provider now what happened to the order's open payment attempts."""
        return self.send(calls.recheck(order_id))

    def cancel(self, order_id: str) -> AfterAction:
        """Cancel an order that is not paid and has no payment of unknown outcome."""
        return self.send(calls.cancel(order_id))

    def wait_for_settlement(
        self,
        order_id: str,
        *,
        timeout_s: float = 60.0,
        first_poll_s: float = 0.5,
        max_poll_s: float = 5.0,
    ) -> Settlement:
        """Read the order until its payment is paid or failed or needs the shopper, at
        most ``timeout_s`` seconds; then ``confirming`` (never ``failed``) if still open.
        A read that fails past its own retries raises its error: not an outcome."""
        ends, polls = self._clock() + timeout_s, 0
        while True:
            order = self.get_order(order_id)
            polls += 1
            outcome = outcome_of(order.state)
            wait = poll_wait_s(polls=polls, first_s=first_poll_s, max_s=max_poll_s)
            if outcome != "confirming" or self._clock() + wait > ends:
                return Settlement(outcome, order)
            self._sleep(wait)

    def send(self, call: Call[T]) -> T:
        """Send ``call``, again while its policy allows, and read its answer."""
        plan = RetryPlan(self.retry, call.replay_safe, self._clock)
        while True:
            plan.sent()
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.body,
                    params=call.params,
                    headers=call.headers(),
                    timeout=plan.timeout_s(),
                )
            except httpx.TransportError as exc:
                wait = plan.after_no_answer(exc)
                if wait is None:
                    raise calls.no_answer(call, plan, exc) from exc
            else:
                wait = calls.wait_after(plan, response)
                if wait is None:
                    return calls.answer(response, call)
            self._sleep(wait)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> OrderguardClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
