"""A webhook receiver for tests: records every delivery, can fail the first N."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Receiver:
    """Deliveries as ``(body, headers)``; answers 500 to the first ``fail_first`` of them."""

    fail_first: int = 0
    deliveries: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    refused: int = 0
    #: When each delivery arrived (``time.monotonic()``), beside :attr:`deliveries`.
    arrived: list[float] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            if self.refused < self.fail_first:
                self.refused += 1
                return Response(status_code=500)
            self.deliveries.append((await request.body(), dict(request.headers)))
            self.arrived.append(time.monotonic())
            return Response(status_code=204)

        return Starlette(routes=[Route("/hooks", receive, methods=["POST"])])

    def event_ids(self) -> list[str]:
        return [json.loads(body)["id"] for body, _ in self.deliveries]

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until ``count`` deliveries arrived; the deadline is far from the usual
        fraction of a second, so only a delivery that never comes fails the test."""
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(self.deliveries) >= count, f"{len(self.deliveries)} of {count} delivered"
