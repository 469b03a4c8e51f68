"""The one place where everything is wired together."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from contextlib import ExitStack, asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from orderguard.api.render import Actions, order_json
from orderguard.api.server import settle_heap
from orderguard.config import Settings
from orderguard.container import Container
from orderguard.domain.refund_schedule import RefundCheckSchedule
from orderguard.domain.schedule import RecheckSchedule
from orderguard.observability.instrumented import (
    InstrumentedProvider,
    ObservedBreaker,
    publish_breakers,
)
from orderguard.providers import labs, registry
from orderguard.providers.plugin import AccountProvider
from orderguard.providers.profile import CARD_PROFILE, ProviderProfile
from orderguard.providers.resilience import RetryingProvider
from orderguard.services.idempotency import Renderer
from orderguard.services.inbound_webhooks import WebhookInbox
from orderguard.services.intake import Intake
from orderguard.services.janitor import Janitor
from orderguard.services.operations import Operations
from orderguard.services.pace import Pace
from orderguard.services.pay_again import PayAgain
from orderguard.services.payments import Payments, PaymentSettings
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.recheck import Recheck
from orderguard.services.refund_check import RefundCheck
from orderguard.services.shopper_return import ShopperReturn
from orderguard.services.sweep import Sweeper
from orderguard.services.wallet_sweep import TradeQueries
from orderguard.services.webhook_events import WebhookEvents
from orderguard.storage.opening import open_storage
from orderguard.storage.ports import UnitOfWorkFactory

if TYPE_CHECKING:
    from fastapi import FastAPI

    from orderguard.api.app import ApiWiring, Face
    from orderguard.web import Offered, WebWiring
    from orderguard.worker import Worker

__all__ = [
    "Container",
    "build_app",
    "configured_providers",
    "new_worker",
    "open_sql",
    "open_storage",
    "wire",
    "work_alone",
]

log = logging.getLogger("orderguard")


def wire(
    settings: Settings,
    storage: UnitOfWorkFactory,
    providers: Providers,
    *,
    render: Renderer | None = None,
) -> Container:
    """Services on top of ``storage`` (SQL or in-memory) and ``providers``.

    ``render`` writes the body an idempotent request's replay answers with (the services
    store it, they never build it): by default :func:`api_answers` at the public URL.
    """
    if settings.planted_defect:  # the demo's deliberate defects: see demo/defects.py
        from orderguard.demo.defects import plant

        return plant(
            settings.planted_defect, partial(_wire, settings, render=render), storage, providers
        )
    return _wire(settings, storage, providers, render=render)


def _wire(
    settings: Settings,
    storage: UnitOfWorkFactory,
    providers: Providers,
    *,
    render: Renderer | None,
) -> Container:
    return_url = settings.public_url.rstrip("/") + "/orders/{order_id}/return?token={token}"
    payments = Payments(
        providers,
        PaymentSettings(
            return_url=return_url,
            time_budget_s=settings.payment_time_budget_s,
            action_expiry=timedelta(minutes=settings.action_expiry_minutes),
        ),
    )
    render = render or api_answers(settings.public_url, payments.shopper_action)
    recheck = Recheck(storage, payments)
    events = WebhookEvents(storage, payments, recheck)
    schedule = RecheckSchedule().scaled(settings.recheck_scale)
    return Container(
        settings=settings,
        storage=storage,
        payments=payments,
        intake=Intake(storage, render, payments),
        pay_again=PayAgain(storage, render, payments),
        shopper_pay_pace=Pace(),
        recheck=recheck,
        shopper_return=ShopperReturn(recheck),
        inbox=WebhookInbox(
            storage,
            payments.providers,
            events.apply,
            applied_already=events.applied_already,
        ),
        janitor=Janitor(
            storage,
            recheck,
            schedule=schedule,
            lease=timedelta(seconds=settings.janitor_lease_s),
            concurrency=settings.janitor_concurrency,
            check_time=timedelta(seconds=2 * settings.payment_time_budget_s + 5),
        ),
        sweeper=Sweeper(
            storage,
            payments,
            auto_refund=settings.sweep_auto_refund,
            queries=TradeQueries(
                storage,
                payments.providers,
                batch=settings.sweep_query_batch,
                per_second=settings.sweep_queries_per_s,
            ),
        ),
        operations=Operations(storage, payments),
        refund_check=RefundCheck(
            storage,
            providers,
            schedule=RefundCheckSchedule().scaled(settings.recheck_scale),
            lease=timedelta(seconds=settings.janitor_lease_s),
            check_time=timedelta(seconds=settings.payment_time_budget_s + 5),
        ),
    )


def api_answers(public_url: str, actions: Actions) -> Renderer:
    """The API's order document (``api/render.py``) as the services' replay body, its
    ``next_action`` as ``actions`` says (``Payments.shopper_action``)."""
    return partial(order_json, public_url=public_url, actions=actions)


def slot(
    settings: Settings, provider: AccountProvider, profile: ProviderProfile = CARD_PROFILE
) -> ProviderSlot:
    """A provider with retries and a circuit breaker configured from ``settings``."""
    breaker = ObservedBreaker(
        provider.name,
        failure_threshold=settings.breaker_threshold,
        cool_down_s=settings.breaker_cool_down_s,
    )
    wrapped = RetryingProvider(InstrumentedProvider(provider))
    return ProviderSlot(wrapped, breaker, livemode=provider.livemode, profile=profile)


def sandbox_webhook_secret() -> str:
    """A fresh secret for the in-process sandbox, made at each start and never published,
    so no well-known string verifies a webhook."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def configured_providers(settings: Settings, resources: ExitStack) -> Providers:
    """Every account whose key is set (main accounts first, then fail-over accounts), each
    built by its provider package (``providers/registry.py``); without a main account, the
    development sandbox first.

    Each account verifies webhooks with its own secret; the in-process sandbox with a
    secret made here for it alone.
    """
    timeout = settings.payment_time_budget_s
    chosen = registry.configured(settings)
    if not registry.has_real_account(settings):
        secret = sandbox_webhook_secret()
        account = labs.start_sandbox(settings, resources, secret, settings.public_url)
        chosen.insert(0, (registry.plugin(account.provider), account))
    slots = [slot(settings, p.build(a, timeout), p.profile) for p, a in chosen]
    return Providers(slots)


async def open_sql(settings: Settings, *, auto_migrate: bool | None = None) -> Container:
    """The whole application on the configured database and providers."""
    storage = await open_storage(settings, auto_migrate=auto_migrate)
    resources = ExitStack()
    try:
        container = wire(settings, storage, configured_providers(settings, resources))
    except BaseException:
        await storage.close()
        resources.close()
        raise
    container.resources = resources
    return container


# --- serve: the HTTP app, its faces and the worker -------------------------------------

#: ``serve`` runs the API's routes and the faces on a :class:`Container`, which they do not
#: import: mypy checks here that it has every desk they declare (``api.app.ApiWiring``,
#: ``web.WebWiring``).
SERVED_ON: tuple[type[ApiWiring], type[WebWiring]] = (Container, Container)


def offered_to_faces() -> Offered:
    """What the registered providers offer the faces: their test methods (the shopper's
    page in development) and their credentials' shapes (hidden in the console)."""
    from orderguard import web

    return web.offer(
        registry.test_methods(), registry.signature_headers(), registry.hidden_shapes()
    )


def faces() -> tuple[Face, ...]:
    """What ``serve`` adds to the API: the shopper's page and console (told what the
    providers offer), and the console's views on the outbox and recorded reconciliation."""
    from orderguard import web
    from orderguard.web.console import plugs

    return (partial(web.install, offered=offered_to_faces()), plugs.install)


def build_app(
    *,
    container: Container | None = None,
    settings: Settings | None = None,
    worker: bool = True,
    metrics_apart: bool = False,
    settle: bool = False,
) -> FastAPI:
    """``serve``'s application with its faces: on a wired ``container``, or on one opened
    from ``settings`` while it serves (then with a worker in the process unless ``worker``
    is off, and with the process's heap settled again once it is open if ``settle``: see
    :func:`serving`). ``metrics_apart`` as in :func:`~orderguard.api.app.create_app`."""
    from orderguard.api.app import create_app
    from orderguard.observability.wiring import database_collector

    if container is not None:
        return create_app(
            container=container,
            faces=faces(),
            gauges=database_collector,
            metrics_apart=metrics_apart,
        )
    resolved = settings or Settings.load()
    return create_app(
        opener=partial(serving, resolved, worker=worker, settle=settle),
        settings=resolved,
        faces=faces(),
        gauges=database_collector,
        metrics_apart=metrics_apart,
    )


def new_worker(container: Container, *, worker_id: str | None = None) -> Worker:
    """A worker on ``container``, given its outbox relay and the doctor's periodic checks
    (built here so the worker does not import them)."""
    from orderguard.observability.worker_checks import CHECK_EVERY_SECONDS, run_checks
    from orderguard.outbox.duty import RelayDuty
    from orderguard.worker import Worker

    return Worker(
        container,
        outbox=partial(RelayDuty, container),
        checks=partial(run_checks, container),
        checks_every=CHECK_EVERY_SECONDS,
        worker_id=worker_id,
    )


@asynccontextmanager
async def serving(
    settings: Settings, *, worker: bool = True, settle: bool = False
) -> AsyncIterator[Container]:
    """The application opened on the configured database, with its worker running in
    this event loop unless ``worker`` is off; stopped and closed on leaving.

    With ``settle`` (a process of ``serve``, never a test's), what opening made (pools,
    clients, the worker) joins what start-up had frozen (:func:`settle_heap`)."""
    container = await open_sql(settings)
    stop = asyncio.Event()
    background = [asyncio.create_task(_publishing(container, stop))]
    if worker:
        background.append(asyncio.create_task(new_worker(container).run(stop)))
    if settle:
        settle_heap()
    try:
        yield container
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        await container.close()


async def work_alone(settings: Settings) -> None:
    """The worker in a process of its own on the configured database (``orderguard worker``,
    ``serve``'s worker process) until SIGTERM or SIGINT."""
    import signal

    container = await open_sql(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    publishing = asyncio.create_task(_publishing(container, stop))
    worker = new_worker(container)
    settle_heap()  # the worker's process lives as long as it works: see settle_heap
    try:
        await worker.run(stop)
    finally:
        stop.set()
        await publishing
        await container.close()


def _publishing(container: Container, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    """The breakers' states published every second until ``stop`` (see
    :func:`~orderguard.observability.instrumented.publish_breakers`)."""
    return publish_breakers([s.breaker for s in container.payments.providers.slots], stop)
