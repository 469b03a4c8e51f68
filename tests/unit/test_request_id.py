"""The request id lives at the bottom of the package (orderguard.request_id), where storage
reads it; observability's request context is what sets it."""

from __future__ import annotations

import asyncio

from orderguard.observability.context import request_context
from orderguard.request_id import current_request_id, request_id_set


def test_outside_a_request_there_is_no_id() -> None:
    assert current_request_id() is None


def test_the_request_context_sets_the_id_storage_reads_and_unsets_it_after() -> None:
    with request_context("req-abc"):
        assert current_request_id() == "req-abc"
    assert current_request_id() is None


async def test_a_task_started_in_a_request_keeps_its_id() -> None:
    with request_id_set("req-task"):
        seen = asyncio.create_task(_read_later())
    assert await seen == "req-task"
    assert current_request_id() is None


async def _read_later() -> str | None:
    await asyncio.sleep(0)
    return current_request_id()
