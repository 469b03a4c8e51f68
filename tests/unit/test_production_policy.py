"""What production mode refuses, as a pure policy over the settings (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from orderguard.config import Settings
from orderguard.production import is_known_default, production_problems

#: A production deployment with a real account, its own secret and an https address.
SAFE: dict[str, Any] = {
    "env": "production",
    "stripe_api_key": "sk_live_shop",
    "stripe_webhook_secret": "whsec_k3mY7qP0vR2sT9wX4zB6nD8fH1jL5",
    "public_url": "https://shop.example",
}


def problems(*, keys: int = 1, **changes: Any) -> list[str]:
    settings = Settings(**{**SAFE, **changes})
    return [p.setting for p in production_problems(settings, active_api_keys=keys)]


def test_a_safe_production_deployment_has_no_problem() -> None:
    assert problems() == []


def test_development_refuses_nothing_not_even_the_sandbox_over_http() -> None:
    settings = Settings()  # nothing configured
    assert production_problems(settings, active_api_keys=0) == []


def test_production_refuses_the_in_process_sandbox() -> None:
    [problem] = production_problems(Settings(**{**SAFE, "stripe_api_key": None}), active_api_keys=1)
    assert problem.setting == "ORDERGUARD_STRIPE_API_KEY"
    assert "in-process sandbox is for development only" in problem.fix


@pytest.mark.parametrize(
    "secret", [None, "", "  ", "whsec_sandbox", "whsec_demo", "whsec_...", "whsec_xxxxxxxx",
               "<your secret>", "whsec_<secret>", "changeme", "WHSEC_SANDBOX"],
)  # fmt: skip
def test_production_refuses_a_missing_public_or_placeholder_webhook_secret(
    secret: str | None,
) -> None:
    assert problems(stripe_webhook_secret=secret) == ["ORDERGUARD_STRIPE_WEBHOOK_SECRET"]


def test_the_fail_over_account_needs_its_own_secret_not_the_primarys() -> None:
    secondary = {"secondary_stripe_api_key": "sk_live_failover"}
    name = "ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET"
    assert problems(**secondary) == [name]
    assert problems(**secondary, secondary_stripe_webhook_secret="whsec_sandbox") == [name]
    assert problems(**secondary, secondary_stripe_webhook_secret=SAFE["stripe_webhook_secret"]) == [
        name
    ]
    assert problems(**secondary, secondary_stripe_webhook_secret="whsec_failover_own_9f") == []


def test_production_refuses_to_run_without_an_active_api_key() -> None:
    assert problems(keys=0) == ["API key"]


def test_production_refuses_plain_http_unless_a_local_tls_proxy_is_declared() -> None:
    assert problems(public_url="http://shop.example") == ["ORDERGUARD_PUBLIC_URL"]
    assert problems(public_url="http://shop.example", allow_http=True) == []


def test_every_problem_is_listed_and_its_line_names_the_setting_and_the_fix() -> None:
    settings = Settings(env="production")
    found = production_problems(settings, active_api_keys=0)
    assert [p.setting for p in found] == [
        "ORDERGUARD_STRIPE_API_KEY",
        "API key",
        "ORDERGUARD_PUBLIC_URL",
    ]
    for problem in found:
        assert problem.line.startswith(f"orderguard: production: {problem.setting} ")
        assert "\n" not in problem.line and problem.line.endswith(problem.fix)


def test_a_real_looking_secret_is_not_a_known_default() -> None:
    assert not is_known_default("whsec_k3mY7qP0vR2sT9wX4zB6nD8fH1jL5")
