"""``orderguard serve`` as shipped: a user added with ``orderguard users add`` logs in to
the console, finds a paid order and its shopper's page; the cookie gets ``Secure`` when
the public URL is https."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import ORDERGUARD, clean_env, serving
from tests.factories import key, order_body

pytestmark = pytest.mark.slow
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_a_user_added_on_the_command_line_logs_in_to_the_served_console(
    database_url: str, tmp_path: Path
) -> None:
    env = clean_env(database_url, ORDERGUARD_PUBLIC_URL="https://shop.example")
    subprocess.run([ORDERGUARD, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
    added = subprocess.run(
        [ORDERGUARD, "users", "add", "ana", "--role", "viewer", "--password-stdin"],
        env=env,
        cwd=tmp_path,
        input="s3cret-enough\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr

    with serving(env, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        order = http.post(
            "/v1/orders", json=order_body(payment={"method": "pm_card_visa"}), headers=key()
        ).json()
        status_url = str(order["status_url"])
        assert status_url.startswith("https://shop.example/orders/")
        shopper = http.get(status_url.removeprefix("https://shop.example"))
        login = http.get("/console/login")
        csrf = _CSRF.search(login.text)
        assert csrf is not None
        answer = http.post(
            "/console/login",
            data={"csrf": csrf[1], "name": "ana", "password": "s3cret-enough"},
            headers={"Cookie": f"og_csrf={login.cookies['og_csrf']}"},  # Secure: sent by hand
        )
        session = answer.cookies.get("og_session")
        page = http.get(
            f"/console/orders/{order['id']}", headers={"Cookie": f"og_session={session}"}
        )

    assert shopper.status_code == 200 and "Paid" in shopper.text
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]  # https public URL: Secure cookies
    assert page.status_code == 200 and 'id="order-state">paid<' in page.text
