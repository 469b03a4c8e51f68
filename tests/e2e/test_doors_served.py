"""The doors of a served ``orderguard serve``, over real HTTP: the Host check, and the
operations address (``--metrics-host/--metrics-port``) that takes ``/metrics``, ``/docs``
and ``/openapi.json`` off the main port; and scopes chosen at ``keys create``."""

from __future__ import annotations

import json
import re
import signal
import socket
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from orderguard.api.problems import PROBLEM_JSON
from orderguard.api.server import free_port
from orderguard.cli import main
from tests.e2e.procs import clean_env, serving
from tests.factories import order_body

SCOPES = re.compile(r"^scopes: (.+)$", re.MULTILINE)


def test_a_served_request_naming_another_host_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    with serving(clean_env(sqlite_url), tmp_path) as server, httpx.Client() as http:
        forged = http.post(
            f"{server.url}/v1/orders",
            json=order_body(),
            headers={"Host": "evil.example", "Idempotency-Key": str(uuid.uuid4())},
        )
        listed = http.get(f"{server.url}/v1/orders")
    assert forged.status_code == 421, forged.text
    assert forged.headers["content-type"] == PROBLEM_JSON
    assert listed.status_code == 200 and listed.json()["data"] == [], "nothing was placed"


def test_without_keys_a_served_request_through_a_local_proxy_is_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    # nginx's plain proxy_pass with proxy_add_x_forwarded_for: peer and Host are loopback
    proxied = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"}
    with serving(clean_env(sqlite_url), tmp_path) as server, httpx.Client() as http:
        refused = http.post(
            f"{server.url}/v1/orders",
            json=order_body(),
            headers={**proxied, "Idempotency-Key": str(uuid.uuid4())},
        )
        listed = http.get(f"{server.url}/v1/orders")
    assert refused.status_code == 401, refused.text
    assert "proxy" in refused.json()["detail"]
    assert listed.status_code == 200 and listed.json()["data"] == [], "nothing was placed"


def test_a_served_request_with_two_host_headers_or_none_gets_400(
    sqlite_url: str, tmp_path: Path
) -> None:
    with serving(clean_env(sqlite_url), tmp_path) as server, httpx.Client() as http:
        own = f"127.0.0.1:{server.port}"
        body = json.dumps(order_body()).encode()
        answers = [
            _raw(server.port, "POST", "/v1/orders", ["evil.example", own], body),
            _raw(server.port, "POST", "/v1/orders", [own, "evil.example"], body),
            _raw(server.port, "GET", "/v1/orders", [own, own], b""),
            _raw(server.port, "GET", "/v1/orders", [], b""),
        ]
        listed = http.get(f"{server.url}/v1/orders")
    for status, head, answer in answers:
        assert status == 400, (head, answer)
        assert json.loads(answer)["type"] == "/problems/ambiguous-host"
    assert listed.status_code == 200 and listed.json()["data"] == [], "nothing was placed"


def _raw(
    port: int, method: str, path: str, hosts: list[str], body: bytes
) -> tuple[int, str, bytes]:
    """One HTTP/1.1 request written by hand (no client merges or adds a Host header):
    the status, the head and the body of the answer."""
    lines = [f"{method} {path} HTTP/1.1", *(f"Host: {h}" for h in hosts)]
    lines += [
        "Content-Type: application/json",
        f"Idempotency-Key: {uuid.uuid4()}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, answer = received.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    return int(text.split(" ", 2)[1]), text, answer


@pytest.mark.slow
def test_metrics_and_docs_move_to_their_own_address(sqlite_url: str, tmp_path: Path) -> None:
    ops_port = free_port()
    options = ("--metrics-host", "127.0.0.1", "--metrics-port", str(ops_port))
    ops = f"http://127.0.0.1:{ops_port}"
    with serving(clean_env(sqlite_url), tmp_path, options=options) as server:
        with httpx.Client(timeout=10) as http:
            on_main = {p: http.get(f"{server.url}{p}").status_code for p in _OPS_PATHS}
            on_ops = {p: http.get(f"{ops}{p}") for p in _OPS_PATHS}
            rebound = http.get(f"{ops}/metrics", headers={"Host": f"evil.example:{ops_port}"})
            api = http.get(f"{server.url}/v1/orders")
        stopped = server.stop()
    assert on_main == dict.fromkeys(_OPS_PATHS, 404), server.log()
    assert {p: r.status_code for p, r in on_ops.items()} == dict.fromkeys(_OPS_PATHS, 200)
    assert "orderguard_intake_requests_total" in on_ops["/metrics"].text
    assert "/v1/orders" in on_ops["/openapi.json"].json()["paths"]
    assert "swagger" in on_ops["/docs"].text.lower()
    assert rebound.status_code == 421, "DNS rebinding cannot reach the operations address"
    assert api.status_code == 200, api.text
    assert stopped != -signal.SIGKILL, f"SIGTERM did not stop it:\n{server.log()}"
    with pytest.raises(httpx.TransportError):  # one signal stopped both servers
        httpx.get(f"{ops}/metrics", timeout=1.0)


_OPS_PATHS = ("/metrics", "/docs", "/openapi.json")


def test_keys_are_created_with_the_scopes_named_and_listed_with_them(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"ORDERGUARD_DATABASE_URL": sqlite_url, "ORDERGUARD_CONFIG": None}

    def cli(*args: str) -> str:
        done = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.stdout

    refunds = cli(
        "keys", "create", "finance", "--scope", "payments:refund", "--scope", "orders:read"
    )
    checkout = cli("keys", "create", "checkout")
    assert SCOPES.findall(refunds) == ["orders:read payments:refund"]
    assert SCOPES.findall(checkout) == ["orders:read orders:write"]
    listed = cli("keys", "list").splitlines()
    assert [line.split("  ")[2] for line in listed] == ["finance", "checkout"]
    assert listed[0].endswith("orders:read payments:refund")
    assert listed[1].endswith("orders:read orders:write")
    wrong = runner.invoke(main, ["keys", "create", "x", "--scope", "orders:all"], env=env)
    assert wrong.exit_code == 2 and "orders:all" in wrong.output
