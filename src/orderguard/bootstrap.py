"""The one place where everything is wired together."""

from __future__ import annotations

import logging
import secrets
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from orderguard.api.render import order_json
from orderguard.config import Settings
from orderguard.domain.schedule import RecheckSchedule
from orderguard.providers.base import PaymentProvider
from orderguard.providers.instrumented import InstrumentedProvider, ObservedBreaker
from orderguard.providers.resilience import RetryingProvider
from orderguard.providers.stripe import StripeProvider
from orderguard.services.clock import Clock, system_clock
from orderguard.services.intake import Intake
from orderguard.services.janitor import Janitor
from orderguard.services.operations import Operations
from orderguard.services.pace import Pace
from orderguard.services.pay_again import PayAgain
from orderguard.services.payments import Payments, PaymentSettings
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.recheck import Recheck
from orderguard.services.shopper_return import ShopperReturn
from orderguard.services.sweep import Sweeper
from orderguard.services.webhooks import WebhookInbox
from orderguard.storage import migrate
from orderguard.storage.database import connect
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.storage.unit_of_work import SqlStorage

log = logging.getLogger("orderguard")

#: The API key the in-process sandbox accepts.
SANDBOX_KEY = "sk_test_orderguard_sandbox"


@dataclass
class Container:
    """The wired application: settings, storage, providers and services."""

    settings: Settings
    storage: UnitOfWorkFactory
    payments: Payments
    intake: Intake
    pay_again: PayAgain
    #: One shopper-page payment per order per interval (each one calls the provider).
    shopper_pay_pace: Pace
    recheck: Recheck
    shopper_return: ShopperReturn
    inbox: WebhookInbox
    janitor: Janitor
    sweeper: Sweeper
    operations: Operations
    clock: Clock = system_clock
    resources: ExitStack = field(default_factory=ExitStack)

    async def close(self) -> None:
        """Release every connection and stop the in-process sandbox."""
        await self.payments.providers.aclose()
        await self.storage.close()
        self.resources.close()


def wire(settings: Settings, storage: UnitOfWorkFactory, providers: Providers) -> Container:
    """Services on top of ``storage`` (SQL or in-memory) and ``providers``."""
    render = partial(order_json, public_url=settings.public_url)
    return_url = settings.public_url.rstrip("/") + "/orders/{order_id}/return?token={token}"
    payments = Payments(
        providers,
        PaymentSettings(return_url=return_url, time_budget_s=settings.payment_time_budget_s),
    )
    if settings.planted_defect:
        log.warning(
            "PLANTED DEFECT %r is on: this service is broken on purpose", settings.planted_defect
        )
    recheck = Recheck(storage, payments, planted_defect=settings.planted_defect)
    schedule = RecheckSchedule().scaled(settings.recheck_scale)
    container = Container(
        settings=settings,
        storage=storage,
        payments=payments,
        intake=Intake(storage, render, payments),
        pay_again=PayAgain(storage, render, payments),
        shopper_pay_pace=Pace(),
        recheck=recheck,
        shopper_return=ShopperReturn(recheck),
        inbox=WebhookInbox(storage, payments, recheck),
        janitor=Janitor(
            storage,
            recheck,
            schedule=schedule,
            lease=timedelta(seconds=settings.janitor_lease_s),
            concurrency=settings.janitor_concurrency,
            check_time=timedelta(seconds=2 * settings.payment_time_budget_s + 5),
        ),
        sweeper=Sweeper(storage, payments, auto_refund=settings.sweep_auto_refund),
        operations=Operations(storage, payments),
    )
    if settings.planted_defect:  # the demo only: a service wrapped by a planted defect
        from orderguard.demo.defects import plant_in_services

        container = plant_in_services(settings.planted_defect, container)
    return container


def slot(settings: Settings, provider: StripeProvider) -> ProviderSlot:
    """A provider with retries and a circuit breaker configured from ``settings`` (and, for
    the demo only, a planted defect wrapped around it: see ``demo/defects.py``)."""
    inner: PaymentProvider = provider
    if settings.planted_defect:
        from orderguard.demo.defects import plant_in_provider

        inner = plant_in_provider(settings.planted_defect, provider)
    breaker = ObservedBreaker(
        provider.name,
        failure_threshold=settings.breaker_threshold,
        cool_down_s=settings.breaker_cool_down_s,
    )
    wrapped = RetryingProvider(InstrumentedProvider(inner))
    return ProviderSlot(wrapped, breaker, livemode=provider.livemode)


def sandbox_webhook_secret() -> str:
    """A fresh secret for the in-process sandbox, made at each start and never published,
    so no well-known string verifies a webhook."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def configured_providers(settings: Settings, resources: ExitStack) -> Providers:
    """Stripe (and a fail-over account) when keys are set, else an in-process sandbox.

    Each account verifies webhooks with its own secret: the primary with
    ``stripe_webhook_secret``, the fail-over account with ``secondary_stripe_webhook_secret``
    and the in-process sandbox with a secret made here for it alone.
    """
    timeout = settings.payment_time_budget_s
    if settings.stripe_api_key:
        primary = StripeProvider(
            api_key=settings.stripe_api_key,
            base_url=settings.stripe_base_url,
            webhook_secret=settings.stripe_webhook_secret,
            name="stripe",
            timeout_s=timeout,
        )
    else:
        secret = sandbox_webhook_secret()
        primary = StripeProvider(
            api_key=SANDBOX_KEY,
            base_url=_sandbox(settings, resources, secret),
            webhook_secret=secret,
            name="sandbox",
            timeout_s=timeout,
        )
    slots = [slot(settings, primary)]
    if settings.secondary_stripe_api_key:
        secondary = StripeProvider(
            api_key=settings.secondary_stripe_api_key,
            base_url=settings.secondary_stripe_base_url,
            webhook_secret=settings.secondary_stripe_webhook_secret,
            name="stripe-secondary",
            timeout_s=timeout,
        )
        slots.append(slot(settings, secondary))
    return Providers(slots)


def _sandbox(settings: Settings, resources: ExitStack, webhook_secret: str) -> str:
    from orderguard.providers.sandbox.faults import load_profile
    from orderguard.providers.sandbox.server import run_sandbox
    from orderguard.providers.sandbox.service import SandboxConfig

    config = SandboxConfig(
        db_path=settings.sandbox_db,
        faults=load_profile(settings.sandbox_faults),
        webhook_url=settings.public_url.rstrip("/") + "/v1/webhooks/sandbox",
        webhook_secret=webhook_secret,
    )
    return resources.enter_context(run_sandbox(config))


async def open_storage(settings: Settings, *, auto_migrate: bool | None = None) -> SqlStorage:
    """Connect to the configured database and check its schema.

    SQLite is migrated on the spot (``auto_migrate`` defaults to on for it); PostgreSQL
    must be migrated by ``orderguard migrate`` first, else ``SchemaBehind`` is raised.
    """
    db = await connect(settings.database_url, pool_size=settings.db_pool_size)
    try:
        if auto_migrate if auto_migrate is not None else db.dialect == "sqlite":
            await migrate.migrate(db)
        else:
            await migrate.ensure_current(db)
    except BaseException:
        await db.close()
        raise
    return SqlStorage(db)


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
