"""Links orderguard makes point where the service answers: with no public URL configured,
``serve --port N`` makes status links (and the 3-D Secure return address) on port N; a
configured loopback public URL on another port is warned about at start."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from orderguard.config import Settings
from orderguard.links import bound_url, disagreement, linked_to_bind
from tests.e2e.procs import clean_env, serving
from tests.factories import order_body


def test_a_status_link_from_serve_on_a_random_port_reaches_the_shoppers_page(
    sqlite_url: str, tmp_path: Path
) -> None:
    with serving(clean_env(sqlite_url), tmp_path) as server, httpx.Client(timeout=10) as http:
        placed = http.post(
            f"{server.url}/v1/orders",
            json=order_body(),
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert placed.status_code == 201, placed.text
        link = placed.json()["status_url"]
        page = http.get(link)

    assert server.port != 8000
    assert urlsplit(link).port == server.port, link
    assert page.status_code == 200, page.text
    assert placed.json()["id"] in page.text


def test_a_loopback_public_url_on_another_port_is_warned_about_at_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_env(sqlite_url, ORDERGUARD_PUBLIC_URL="http://127.0.0.1:8000")
    with serving(env, tmp_path) as server:
        log = server.log()
    assert "ORDERGUARD_PUBLIC_URL is http://127.0.0.1:8000" in log, log
    assert f"listens on port {server.port}" in log


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000"),
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("::", "http://[::1]:9000"),
        ("::1", "http://[::1]:9000"),
        ("shop.internal", "http://shop.internal:9000"),
    ],
)
def test_links_follow_the_bound_address(host: str, url: str) -> None:
    assert bound_url(host, 9000) == url


def test_a_configured_public_url_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no orderguard.toml here
    monkeypatch.delenv("ORDERGUARD_PUBLIC_URL", raising=False)
    assert linked_to_bind(Settings(), "127.0.0.1", 9000).public_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("ORDERGUARD_PUBLIC_URL", "https://shop.example")
    kept = Settings(public_url="https://shop.example")
    assert linked_to_bind(kept, "127.0.0.1", 9000).public_url == "https://shop.example"


@pytest.mark.parametrize(
    ("public_url", "port", "warned"),
    [
        ("http://127.0.0.1:8000", 9000, True),
        ("http://localhost:8000", 9000, True),
        ("http://127.0.0.1:9000", 9000, False),
        ("https://shop.example", 9000, False),  # a proxy's address: cannot be judged here
        ("https://127.0.0.1:8443", 9000, False),  # a TLS proxy on this host
    ],
)
def test_a_loopback_public_url_that_misses_the_port_is_a_disagreement(
    public_url: str, port: int, warned: bool
) -> None:
    found = disagreement(Settings(public_url=public_url), "127.0.0.1", port)
    assert (found is not None) == warned, found
