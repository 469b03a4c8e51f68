"""Benchmark: the CPU a Stripe charge costs the process that sends it, by HTTP client.

The Stripe adapter sends its charges with the SDK's headers, encoding and error reading
built once (``providers/stripe/wire.py``) through its own keep-alive HTTP/1.1 client
(``providers/stripe/connections.py``). Compared, in this one process, against one
``orderguard sandbox-provider`` process: the same request built once through the SDK's
aiohttp client (``providers/stripe/transport.py``, the charge's client before, and still
the one every other call and a proxied charge take); the same aiohttp client with the
request built and read by the SDK's requestor on every charge
(``StripeClient.raw_request_async``, as the adapter sent it before ``wire.py``); and the
SDK's default, httpx, with the same. The same adapter (``StripeProvider.create_payment``),
the same charges, ``CONCURRENCY`` of them in flight. Each round charges ``CHARGES`` times
with each, interleaved, and divides this process's CPU time (user + system) by the charges;
figures are medians over rounds, the ratios are taken round by round. On uvloop, as in
``serve``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import stripe
import uvloop

from _common import Context, median, start_sandbox
from orderguard.providers.base import ChargeRequest
from orderguard.providers.stripe.adapter import StripeProvider

TITLE = "Stripe charges: CPU per charge by HTTP client"
CHARGES = 1500
WARMUP_CHARGES = 200
CONCURRENCY = 32
API_KEY = "sk_test_bench"
OURS = "orderguard's own client, request built once"
ONCE = "aiohttp, request built once"
BUILT = "aiohttp, request built by the SDK each time"
HTTPX = "httpx (the SDK's default), request built by the SDK each time"


class _SdkHttpx(stripe.HTTPXClient):
    """The SDK's own httpx client (bodies as ``content=``, which httpx 0.28 wants)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        return [args, kwargs]


class _SdkBuilt:
    """The charge built and read by the SDK's requestor on every request, as the adapter sent
    it before ``providers/stripe/wire.py``: ``StripeClient.raw_request_async``."""

    #: No client of its own (what the adapter closes).
    direct = None

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    async def create(
        self, fields: dict[str, Any], metadata: dict[str, str], *, idempotency_key: str
    ) -> dict[str, Any]:
        answer = await self._client.raw_request_async(
            "post", "/v1/payment_intents", **fields, metadata=metadata,
            idempotency_key=idempotency_key,
        )  # fmt: skip
        return dict(answer.data)


def _charge(n: int) -> ChargeRequest:
    return ChargeRequest(
        order_id=f"ord_bench_{n}",
        attempt_id=f"pay_bench_{n}",
        amount=2599,
        currency="EUR",
        method="pm_card_visa",
        idempotency_key=f"bench-{time.monotonic_ns()}-{n}",
        return_url="https://shop.example/return",
    )


async def _cpu_per_charge(provider: StripeProvider, charges: int) -> tuple[float, float]:
    """Milliseconds of this process's CPU per charge, and charges per second."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(n: int) -> None:
        async with gate:
            result = await provider.create_payment(_charge(n))
            assert result.provider_ref, result

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(charges)))
    return (time.process_time() - cpu) / charges * 1000, charges / (time.perf_counter() - wall)


async def _measure(url: str, rounds: int) -> dict[str, list[tuple[float, float]]]:
    product = StripeProvider(api_key=API_KEY, webhook_secret=None, base_url=url)
    httpx_client = _SdkHttpx()
    sdk_default = StripeProvider(api_key=API_KEY, webhook_secret=None, base_url=url)
    sdk_default._client = stripe.StripeClient(
        API_KEY, base_addresses={"api": url}, http_client=httpx_client, max_network_retries=0
    )
    through_aiohttp = StripeProvider(api_key=API_KEY, webhook_secret=None, base_url=url)
    through_aiohttp._wire.direct = None  # as when a proxy is named: the SDK's aiohttp client
    sdk_built = StripeProvider(api_key=API_KEY, webhook_secret=None, base_url=url)
    sdk_built._wire = _SdkBuilt(sdk_built._client)  # type: ignore[assignment]
    sdk_default._wire = _SdkBuilt(sdk_default._client)  # type: ignore[assignment]
    clients = {
        OURS: product,
        ONCE: through_aiohttp,
        BUILT: sdk_built,
        HTTPX: sdk_default,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    try:
        for provider in clients.values():
            await _cpu_per_charge(provider, WARMUP_CHARGES)
        for _ in range(rounds):
            for name, provider in clients.items():
                results[name].append(await _cpu_per_charge(provider, CHARGES))
    finally:
        await product.aclose()
        await through_aiohttp.aclose()
        await sdk_built.aclose()
        await httpx_client.close_async()  # type: ignore[no-untyped-call]
    return results


def section(ctx: Context) -> str:
    sandbox = start_sandbox(ctx, "sandbox", ctx.workdir / "stripe-client-ledger.db")
    try:
        # On uvloop, the event loop every serve process runs on.
        results = uvloop.run(_measure(f"http://127.0.0.1:{sandbox.port}", ctx.rounds))
    finally:
        sandbox.stop()

    def per_round(a: str, b: str) -> list[float]:
        return [x[0] / y[0] for x, y in zip(results[a], results[b], strict=True)]

    def line(label: str, ratios: list[float]) -> str:
        each = ", ".join(f"{r:.2f}" for r in ratios)
        return f"- **{label}, CPU per charge** = {median(ratios):.2f} (per round: {each})"

    rows = [
        f"| {name} | {median([c for c, _ in runs]):.2f} | {median([r for _, r in runs]):,.0f} |"
        for name, runs in results.items()
    ]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            (__doc__ or "")
            .split("\n\n", 1)[1]
            .strip()
            .replace("``CONCURRENCY``", str(CONCURRENCY))
            .replace("``CHARGES``", f"{CHARGES:,}"),
            "",
            f"{ctx.rounds} rounds of {CHARGES:,} charges per client ({WARMUP_CHARGES} each "
            "first, untimed).",
            "",
            "| client | CPU ms per charge (this process) | charges/s |",
            "|---|---:|---:|",
            *rows,
            "",
            line("own client / aiohttp (the request built once for both)", per_round(OURS, ONCE)),
            line("built once / built by the SDK each time (aiohttp both)", per_round(ONCE, BUILT)),
            line("orderguard's / the SDK's default (httpx)", per_round(OURS, HTTPX)),
            "",
        ]
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        print(
            section(
                Context(
                    rounds=3, warmup=0, duration=0, connections=CONCURRENCY, pool_size=None,
                    workdir=Path(scratch), log=print,
                )
            )
        )  # fmt: skip
