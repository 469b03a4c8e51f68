"""G9 by fuzzing: every operation of ``/openapi.json``, fed schemathesis-generated valid and
invalid input, never answers 5xx and never answers outside its own documentation.

The application runs in-process (ASGI) on a SQLite file, the embedded default, with the
in-process sandbox provider, exactly as ``orderguard serve`` wires it. For every response:

- ``not_a_server_error``: no 5xx (503 "storage unavailable" is documented and allowed only
  where documented; a 500 never is);
- ``status_code_conformance``: the status code is documented for the operation;
- ``content_type_conformance``: the content type is documented for that status;
- ``response_schema_conformance`` / ``response_headers_conformance``: the body and
  documented headers match the schema;
- ``negative_data_rejection``: input that breaks the schema is refused with a 4xx.

Hypothesis prints the seed of a failing run; rerun it with ``--hypothesis-seed``.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orderguard.api.problems import PROBLEM_JSON
from orderguard.bootstrap import build_app
from orderguard.config import Settings
from orderguard.services import api_keys
from orderguard.services.api_keys import KeyScope
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import order_body

MAX_EXAMPLES = 120
ANSWER_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# Not created until the first request starts the application (on whichever xdist worker
# runs these tests); removed by ``_cleanup``.
_WORKDIR = Path(tempfile.gettempdir()) / f"orderguard-fuzz-{uuid.uuid4().hex[:12]}"
SETTINGS = Settings(
    database_url=f"sqlite:///{_WORKDIR / 'fuzz.db'}",
    sandbox_db=str(_WORKDIR / "sandbox.db"),
    payment_time_budget_s=2.0,
    public_url=f"http://{asgi.HOST}",  # the Host schemathesis's ASGI client sends
)
app = build_app(settings=SETTINGS)
#: Its ASGI client's peer is not loopback, so the fuzz calls with an admin key (made once).
AUTH: dict[str, str] = {}
schema = schemathesis.openapi.from_dict(
    app.openapi(),
    config=schemathesis.Config.from_dict(
        {"generation": {"mode": "all", "max-examples": MAX_EXAMPLES}}
    ),
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    _WORKDIR.mkdir(parents=True, exist_ok=True)
    AUTH["Authorization"] = f"Bearer {asyncio.run(_admin_key())}"
    yield

    # The ASGI transport keeps the application's lifespan (database, sandbox, housekeeping)
    # running until interpreter exit; end it here so the files can be removed.
    asgi.shutdown_lifespans()
    shutil.rmtree(_WORKDIR, ignore_errors=True)


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# ``/readyz`` answers 503 by design while a check fails (tests/integration/test_ops_readyz.py)
@schema.exclude(path="/readyz").parametrize()
@FUZZ_SETTINGS
def test_every_answer_is_documented_and_never_5xx(case: schemathesis.Case) -> None:
    """Valid and invalid input alike: no 5xx, every answer as documented."""
    case.call_and_validate(app=app, checks=ANSWER_CHECKS, headers=AUTH)


@schema.parametrize()
@FUZZ_SETTINGS
def test_input_that_breaks_the_schema_is_refused(case: schemathesis.Case) -> None:
    """G9: what the schema forbids gets a 4xx problem, never a success."""
    case.call_and_validate(app=app, checks=[negative_data_rejection], headers=AUTH)


async def _admin_key() -> str:
    storage = await open_storage(SETTINGS.database_url)
    try:
        _, secret = await api_keys.create_key(storage, "fuzz", scopes=[KeyScope.ADMIN])
    finally:
        await storage.close()
    return secret


# Inputs random generation rarely reaches: aware timestamps at the edge of the calendar
# (the +00:30 one stays inside it once converted to UTC and is a control).
EXTREME_TIMES = [
    ("created_after", "0001-01-01T00:00:00+01:00"),
    ("created_before", "9999-12-31T23:59:59-01:00"),
    ("created_after", "0001-01-01T00:30:00+00:30"),
    # A forged cursor carrying such a timestamp: any text must be refused, never a 500.
    ("cursor", base64.urlsafe_b64encode(b"0001-01-01T00:00:00+01:00|ord_x").decode()),
]


@pytest.mark.parametrize(("name", "value"), EXTREME_TIMES)
async def test_list_orders_with_extreme_timestamps_is_not_a_500(
    name: str, value: str, sqlite_url: str, tmp_path: Path
) -> None:
    """G9 on SQLite: an aware timestamp that leaves the calendar when moved to UTC."""
    local = build_app(
        settings=Settings(database_url=sqlite_url, sandbox_db=str(tmp_path / "sandbox.db"))
    )
    response = await _get(local, "/v1/orders", params={name: value})
    assert response.status_code != 500, response.text
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["errors"][0]["loc"] == ["query", name]


async def _get(application: Any, path: str, params: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            return await client.get(path, params=params)


async def test_list_orders_after_a_year_before_1000_still_finds_the_order(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A filter that every order passes must return every order (SQLite stores text)."""
    local = build_app(
        settings=Settings(database_url=sqlite_url, sandbox_db=str(tmp_path / "sandbox.db"))
    )
    transport = httpx.ASGITransport(app=local, raise_app_exceptions=False)
    async with local.router.lifespan_context(local):
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            placed = await client.post(
                "/v1/orders", json=order_body(), headers={"Idempotency-Key": "y999"}
            )
            assert placed.status_code == 201, placed.text
            found = {}
            for after in ("1000-01-01T00:00:00Z", "0999-01-01T00:00:00Z"):
                page = await client.get("/v1/orders", params={"created_after": after})
                assert page.status_code == 200, page.text
                found[after] = [o["id"] for o in page.json()["data"]]
    assert found["1000-01-01T00:00:00Z"] == [placed.json()["id"]]
    assert found["0999-01-01T00:00:00Z"] == [placed.json()["id"]], "year 999 filters out 2026"
