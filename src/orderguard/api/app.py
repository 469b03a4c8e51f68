"""The ASGI application: routes, error mapping and request ids."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from orderguard import __version__
from orderguard.api import health, inbound_webhooks, operations, orders, shopper
from orderguard.api.auth import allowed
from orderguard.api.doors import metrics_hosts
from orderguard.api.edge import Edge
from orderguard.api.problems import Problem, ProblemError
from orderguard.api.requests import validation_problem
from orderguard.api.schemas import PayAgainIn, PlaceOrderIn, RefundIn
from orderguard.config import Settings
from orderguard.domain import errors as domain
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.redaction import redact_messages
from orderguard.services.api_keys import KeyScope
from orderguard.storage.errors import StorageError

log = logging.getLogger("orderguard.api")
#: FastAPI's OpenTelemetry spans, metrics and logs, off: orderguard's metrics are its own
#: (Prometheus, ``/metrics``), and FastAPI asks the environment for OpenTelemetry
#: providers on every request even when none is configured.
NO_OPENTELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


class ApiWiring(
    orders.OrderDesk,
    operations.OperationsDesk,
    shopper.ShopperDesk,
    inbound_webhooks.WebhookDesk,
    health.Probes,
    Protocol,
):
    """Everything the API's routes read (each module declares its own desk): what
    :func:`create_app` is given, by the composition root."""


#: The wired application the app is given: whatever has what the routes declare.
W = TypeVar("W", bound=ApiWiring)
#: Opens the wired application for as long as the app serves (entered by its lifespan):
#: the composition root's, which opens the database and starts the worker.
Opener = Callable[[], AbstractAsyncContextManager[W]]
#: Builds the collector of the database's gauges (``/metrics``) on the wired application.
Gauges = Callable[[W], DatabaseCollector]
#: A face added to the app (the shopper's page, the console...), called once with it.
Face = Callable[[FastAPI], None]


def create_app(
    *,
    container: W | None = None,
    opener: Opener[W] | None = None,
    settings: Settings | None = None,
    faces: Sequence[Face] = (),
    gauges: Gauges[W] | None = None,
    metrics_apart: bool = False,
) -> FastAPI:
    """The HTTP API on a wired ``container``, or on the one ``opener`` opens while the app
    serves (``settings`` are then the settings it opens with); each of ``faces`` is added.

    ``container`` is anything with what the routes declare (:class:`ApiWiring`);
    ``gauges`` builds the database's gauges ``/metrics`` shows (left out without it).
    Nothing is opened or started here: ``orderguard.bootstrap.build_app`` gives the opener
    (database and worker), the gauges and the faces ``serve`` shows.
    With ``metrics_apart``, ``/metrics``, ``/docs`` and ``/openapi.json`` are left to
    :func:`create_metrics_app` (served on another address); ``/docs`` is off in production.
    Without ``metrics_apart``, production answers ``/metrics`` and ``/openapi.json`` on the
    public port only to an ``admin`` key (Prometheus sends it as a bearer token).
    """
    if (container is None) == (opener is None):
        raise TypeError("create_app takes a container or an opener (and its settings)")
    if container is not None:
        resolved = container.settings
    elif settings is not None:
        resolved = settings
    else:
        raise TypeError("create_app with an opener needs the settings it opens with")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if opener is None:
            yield
            return
        async with opener() as opened:
            app.state.container = opened
            yield

    docs = None if resolved.production or metrics_apart else "/docs"
    guarded = resolved.production and not metrics_apart  # observability on the public port
    app = FastAPI(
        title="orderguard",
        version=__version__,
        summary="No order is lost between checkout, payment provider and database.",
        lifespan=lifespan,
        docs_url=docs,
        redoc_url=docs and "/redoc",
        openapi_url=None if metrics_apart or guarded else "/openapi.json",
        telemetry=NO_OPENTELEMETRY,
    )
    if container is not None:
        app.state.container = container
    app.state.gauges = gauges  # read by /metrics (api/health.py)
    app.include_router(orders.router)
    app.include_router(operations.router)
    app.include_router(shopper.router)
    app.include_router(inbound_webhooks.router)
    app.include_router(health.router)
    if guarded:
        _observability_for_admins(app)
    elif not metrics_apart:
        app.include_router(health.metrics_router)
    for face in faces:
        face(app)
    _handle_errors(app)
    app.add_middleware(Edge)  # request id, Host check, request counts: one layer
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    return app


def _observability_for_admins(app: FastAPI) -> None:
    """``/metrics`` and ``/openapi.json`` on the public port, for ``admin`` keys only."""
    admin = [Depends(allowed(KeyScope.ADMIN))]
    app.include_router(health.metrics_router, dependencies=admin)

    @app.get("/openapi.json", include_in_schema=False, dependencies=admin)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())


def create_metrics_app(main: FastAPI, *, production: bool) -> FastAPI:
    """``/metrics``, ``/openapi.json`` and (outside production) ``/docs`` of ``main``, for
    an address of their own (``serve --metrics-host/--metrics-port``); same wiring.

    No key: bind it to an address only the monitoring network reaches. Its Host check
    accepts the address a request reached and the loopback names (DNS rebinding).
    """
    ops = FastAPI(
        title="orderguard metrics",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=NO_OPENTELEMETRY,
    )
    ops.state = main.state  # the main app's container, opened by its lifespan
    ops.include_router(health.metrics_router)
    ops.include_router(health.router)  # probes may use this address too

    @ops.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(main.openapi())

    if not production:

        @ops.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="orderguard")

    ops.add_middleware(Edge, rule=metrics_hosts, counted=False)
    return ops


def _handle_errors(app: FastAPI) -> None:
    def problem(exc: Exception) -> ProblemError:
        match exc:
            case ProblemError():
                return exc
            case domain.InvalidOrder():
                return validation_problem([(("body", *loc), msg) for loc, msg in exc.errors])
            case domain.IdempotencyKeyReused():
                return ProblemError(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    exc.detail + " Use a new key for a new request.",
                )
            case domain.IdempotencyKeyInFlight():
                return ProblemError(
                    409,
                    "request-in-flight",
                    "Request in flight",
                    exc.detail,
                    headers={"Retry-After": str(max(1, exc.retry_after))},
                )
            case domain.DuplicateMerchantReference():
                return ProblemError(
                    409,
                    "duplicate-merchant-reference",
                    "Duplicate merchant reference",
                    exc.detail,
                    order_id=exc.existing_order_id,
                )
            case domain.PaymentNotAllowed():
                return ProblemError(
                    409,
                    "payment-not-allowed",
                    "Payment not allowed",
                    exc.detail,
                    order_id=exc.order_id,
                )
            case domain.RefundExceedsRefundable():
                return ProblemError(
                    409,
                    "refund-exceeds-refundable",
                    "Refund exceeds what is left",
                    exc.detail,
                    order_id=exc.order_id,
                    extensions={
                        "amount_refundable": exc.amount_refundable,
                        "currency": exc.currency,
                    },
                )
            case domain.RefundNotAllowed() | domain.CancelNotAllowed():
                slug = "refund" if isinstance(exc, domain.RefundNotAllowed) else "cancel"
                return ProblemError(
                    409,
                    f"{slug}-not-allowed",
                    f"{slug.capitalize()} not allowed",
                    exc.detail,
                    order_id=exc.order_id,
                )
            case domain.ProviderUnreachable():
                return ProblemError(
                    503,
                    "provider-unavailable",
                    "Payment provider unavailable",
                    exc.detail,
                    headers={"Retry-After": "5"},
                )
            case domain.OrderNotFound():
                return ProblemError(404, "order-not-found", "Order not found", exc.detail)
            case StorageError():
                log.error("storage unavailable: %s", exc)
                return ProblemError(
                    503,
                    "storage-unavailable",
                    "Storage unavailable",
                    "The database is unavailable; nothing was changed. "
                    "Retry with the same Idempotency-Key.",
                    headers={"Retry-After": "5"},
                )
            case RequestValidationError():
                errs = [
                    (err["loc"], str(err["msg"]).removeprefix("Value error, "))
                    for err in exc.errors()
                ]
                return validation_problem(errs)
            case HTTPException():
                return ProblemError(
                    exc.status_code,
                    f"http-{exc.status_code}",
                    str(exc.detail),
                    str(exc.detail),
                    headers=dict(exc.headers or {}),
                )
        log.exception("unexpected error", exc_info=exc)
        return ProblemError(
            500,
            "internal-error",
            "Internal error",
            "An unexpected error occurred; nothing was lost. Retry with the same Idempotency-Key.",
        )

    async def handler(request: Request, exc: Exception) -> Response:
        return _redacted(problem(exc)).response()  # error reports never echo personal data

    for kind in (
        ProblemError,
        domain.DomainError,
        StorageError,
        RequestValidationError,
        HTTPException,
        Exception,
    ):
        app.add_exception_handler(kind, handler)


def _redacted(report: ProblemError) -> ProblemError:
    report.detail, messages = redact_messages(report.detail, [m for _, m in report.errors])
    report.errors = [(loc, m) for (loc, _), m in zip(report.errors, messages, strict=True)]
    return report


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (PlaceOrderIn, PayAgainIn, RefundIn, Problem):
        document = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(document.pop("$defs", {}))
        components[model.__name__] = document
    _problem_json_for_validation_errors(schema)
    app.openapi_schema = schema
    return schema


def _problem_json_for_validation_errors(schema: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body; ours is a problem document."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                answer["content"] = {"application/problem+json": {"schema": ref}}
                answer.setdefault("description", "Invalid values")
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
