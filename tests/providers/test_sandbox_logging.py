"""A sandbox served in the process (``orderguard serve`` without Stripe keys) leaves the
process's logging alone: the host keeps its access lines, in its format, redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from orderguard.observability.context import request_context
from tests.log_capture import json_logs
from tests.providers.conftest import StartSandbox


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    with json_logs(logging.INFO) as stream:
        yield stream


def test_the_hosts_access_lines_survive_an_in_process_sandbox(
    captured: io.StringIO, start_sandbox: StartSandbox
) -> None:
    with start_sandbox() as url:
        assert httpx.get(f"{url}/v1/nothing-here?token=t0ken").status_code == 404
        with request_context("req-host"):
            logging.getLogger("uvicorn.access").info(
                '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/orders/o?token=t0ken", "1.1", 200
            )
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert [line["request_id"] for line in access] == ["req-host"], lines  # not the sandbox's
    assert "t0ken" not in captured.getvalue()
    assert not any("Uvicorn running" in str(line["event"]) for line in lines), "sandbox's info"
    assert logging.getLogger("uvicorn.access").getEffectiveLevel() == logging.INFO
    assert not logging.getLogger("uvicorn.access").filters, "the sandbox's filter is gone"
