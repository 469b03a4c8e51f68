"""``doctor``'s judgements that need no network: what a provider on the internet can reach,
which webhook secret it signs with, and the exit code."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.config import Settings
from orderguard.observability.checks import Check, Status, worst
from orderguard.observability.doctor_network import (
    is_public,
    webhook_secret_check,
    webhook_url_check,
)

STRIPE = {"stripe_api_key": "sk_live_x", "stripe_base_url": "https://api.stripe.com"}


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://api.stripe.com", True),
        ("https://shop.example.com/og", True),
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://10.0.0.5", False),
        ("http://orderguard:8000", False),
    ],
)
def test_which_addresses_are_on_the_internet(url: str, public: bool) -> None:
    assert is_public(url) is public


def test_stripe_cannot_deliver_webhooks_to_a_private_address() -> None:
    check = asyncio.run(webhook_url_check(Settings(**STRIPE), ["stripe"]))  # type: ignore[arg-type]
    assert check.status is Status.FAIL
    assert "http://127.0.0.1:8000/v1/webhooks/stripe cannot be reached" in check.detail
    assert "ORDERGUARD_PUBLIC_URL" in check.fix


def test_a_real_stripe_account_needs_its_own_webhook_secret() -> None:
    assert webhook_secret_check(Settings(**STRIPE)).status is Status.FAIL  # type: ignore[arg-type]
    own = Settings(**STRIPE, stripe_webhook_secret="whsec_live")  # type: ignore[arg-type]
    assert webhook_secret_check(own).status is Status.PASS
    public = Settings(**STRIPE, stripe_webhook_secret="whsec_sandbox")  # type: ignore[arg-type]
    assert webhook_secret_check(public).status is Status.FAIL


def test_any_stripe_account_without_a_webhook_secret_fails_as_its_webhooks_are_refused() -> None:
    external_sandbox = Settings(stripe_api_key="sk_test_x", stripe_base_url="http://127.0.0.1:8100")
    assert webhook_secret_check(external_sandbox).status is Status.FAIL
    secondary = Settings(
        **STRIPE,  # type: ignore[arg-type]
        stripe_webhook_secret="whsec_live",
        secondary_stripe_api_key="sk_live_y",
    )
    check = webhook_secret_check(secondary)
    assert check.status is Status.FAIL
    assert "ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET" in check.detail


def test_the_in_process_sandbox_needs_no_webhook_secret_as_it_makes_its_own() -> None:
    assert webhook_secret_check(Settings()).status is Status.PASS


def test_the_exit_code_is_the_worst_status() -> None:
    def check(status: Status) -> Check:
        return Check("c", status, "")

    assert worst([check(Status.PASS), check(Status.SKIP)]) == 0
    assert worst([check(Status.PASS), check(Status.WARN)]) == 1
    assert worst([check(Status.WARN), check(Status.FAIL), check(Status.SKIP)]) == 2
    assert worst([]) == 0
