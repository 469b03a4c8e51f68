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
    assert problems(public_url="http://127.0.0.1:8000", allow_http=True) == []


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


# --- review of issue 15, findings 1, 2, 3 and 11 -----------------------------------------


@pytest.mark.parametrize(
    "api_key",
    ["sk_test_copied_from_staging", "sk_test_orderguard_sandbox", "rk_test_shop", "   ",
     "pk_live_publishable"],
)  # fmt: skip
def test_production_refuses_a_key_that_is_not_live(api_key: str) -> None:
    assert problems(stripe_api_key=api_key) == ["ORDERGUARD_STRIPE_API_KEY"]


def test_a_test_key_in_production_says_how_to_opt_in_for_staging() -> None:
    settings = Settings(**{**SAFE, "stripe_api_key": "sk_test_staging"})
    [problem] = production_problems(settings, active_api_keys=1)
    assert problem.problem == "is not a live key"
    assert "ORDERGUARD_ALLOW_TEST_PROVIDER=true" in problem.fix


def test_a_staging_deployment_may_use_a_test_key_against_a_loopback_sandbox_when_told_so() -> None:
    staging = {
        "stripe_api_key": "sk_test_staging",
        "stripe_base_url": "http://127.0.0.1:18160",
        "allow_test_provider": True,
    }
    assert problems(**staging) == []
    assert problems(**{**staging, "allow_test_provider": False}) == ["ORDERGUARD_STRIPE_API_KEY"]


@pytest.mark.parametrize("allow_test_provider", [False, True])
@pytest.mark.parametrize(
    "base_url", ["http://api.stripe.com", "http://10.0.0.7:12111", "https://", "api.stripe.com"]
)
def test_production_refuses_a_provider_address_that_is_not_https(
    base_url: str, allow_test_provider: bool
) -> None:
    found = problems(stripe_base_url=base_url, allow_test_provider=allow_test_provider)
    assert found == ["ORDERGUARD_STRIPE_BASE_URL"]


def test_the_fail_over_account_must_be_live_and_https_too() -> None:
    secondary = {
        "secondary_stripe_api_key": "sk_test_failover",
        "secondary_stripe_webhook_secret": "whsec_failover_own_9f",
    }
    assert problems(**secondary) == ["ORDERGUARD_SECONDARY_STRIPE_API_KEY"]
    live = {**secondary, "secondary_stripe_api_key": "sk_live_failover"}
    assert problems(**live) == []
    plain = {**live, "secondary_stripe_base_url": "http://failover.example"}
    assert problems(**plain) == ["ORDERGUARD_SECONDARY_STRIPE_BASE_URL"]


def test_a_fail_over_secret_that_is_the_primarys_with_a_trailing_space_is_refused() -> None:
    found = problems(
        secondary_stripe_api_key="sk_live_failover",
        secondary_stripe_webhook_secret=SAFE["stripe_webhook_secret"] + " ",
    )
    assert found == ["ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET"]


def test_production_refuses_the_planted_double_charge_defect() -> None:
    settings = Settings(**{**SAFE, "planted_defect": "recharge_unknown"})
    [problem] = production_problems(settings, active_api_keys=1)
    assert (problem.setting, problem.problem) == (
        "ORDERGUARD_PLANTED_DEFECT",
        "is set (recharge_unknown)",
    )


@pytest.mark.parametrize(
    ("public_url", "allow_http"),
    [
        ("https://", False),
        ("https:shop.example", False),
        ("https://127.0.0.1:8000", False),
        ("https://localhost", True),
        ("http://shop.example", True),  # a proxy's TLS does not make shoppers' links https
        ("http://203.0.113.9:8000", True),
        ("ftp://shop.example", True),
    ],
)
def test_production_refuses_a_public_url_shoppers_cannot_use_safely(
    public_url: str, allow_http: bool
) -> None:
    assert problems(public_url=public_url, allow_http=allow_http) == ["ORDERGUARD_PUBLIC_URL"]


def test_allow_http_covers_only_a_loopback_address_behind_a_local_tls_proxy() -> None:
    assert problems(public_url="http://localhost:8000", allow_http=True) == []
    assert problems(public_url="http://localhost:8000") == ["ORDERGUARD_PUBLIC_URL"]
    assert problems(public_url="http://shop.example", allow_http=True) == ["ORDERGUARD_PUBLIC_URL"]


@pytest.mark.parametrize("api_key", ["sk_live_51realLooking", "rk_live_restricted"])
def test_development_refuses_a_live_key_live_money_is_never_development(api_key: str) -> None:
    settings = Settings(stripe_api_key=api_key, stripe_webhook_secret="whsec_abcdef123456")
    [problem] = production_problems(settings, active_api_keys=0)
    assert problem.mode == "development"
    assert problem.line.startswith(
        "orderguard: development: ORDERGUARD_STRIPE_API_KEY is a live key: "
        "set ORDERGUARD_ENV=production"
    )


def test_development_refuses_a_live_fail_over_key_too_and_accepts_test_keys() -> None:
    secondary = Settings(stripe_api_key="sk_test_a", secondary_stripe_api_key="sk_live_b")
    found = production_problems(secondary, active_api_keys=0)
    assert [p.setting for p in found] == ["ORDERGUARD_SECONDARY_STRIPE_API_KEY"]
    tests_only = Settings(stripe_api_key="sk_test_a", secondary_stripe_api_key="sk_test_b")
    assert production_problems(tests_only, active_api_keys=0) == []
