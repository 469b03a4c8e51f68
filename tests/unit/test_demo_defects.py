"""The demo's ``refund_amount`` defect: planted at wiring, around the provider, and only when
the setting says so (production refuses the setting)."""

from __future__ import annotations

import pytest

from orderguard.bootstrap import slot
from orderguard.config import ConfigError, Settings
from orderguard.demo.defects import ShortRefunds, short_amount
from orderguard.observability.instrumented import InstrumentedProvider
from orderguard.production import production_problems
from orderguard.providers.base import ChargeRequest, PaymentProvider
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import RetryingProvider
from orderguard.providers.stripe import StripeProvider


def _stripe() -> StripeProvider:
    return StripeProvider(
        api_key="sk_test_x",
        base_url="http://127.0.0.1:9",
        webhook_secret="whsec_x",
        name="sandbox",
        timeout_s=1,
    )


def _innermost(provider: PaymentProvider) -> PaymentProvider:
    """Under the retries and the instrumentation: what the service was wired with."""
    assert isinstance(provider, RetryingProvider)
    instrumented = provider.inner
    assert isinstance(instrumented, InstrumentedProvider)
    return instrumented.inner


def test_the_service_is_wired_with_short_refunds_only_when_the_defect_is_on() -> None:
    stripe = _stripe()
    planted = _innermost(slot(Settings(planted_defect="refund_amount"), stripe).provider)
    assert isinstance(planted, ShortRefunds) and planted.inner is stripe
    assert planted.name == "sandbox"  # attempts are stored under the same provider name
    assert _innermost(slot(Settings(), stripe).provider) is stripe
    other = slot(Settings(planted_defect="recharge_unknown"), stripe).provider
    assert _innermost(other) is stripe


@pytest.mark.parametrize(
    ("asked", "sent"), [(3238, 2918), (1610, 1450), (10000, 9000), (20, 10), (10, 10), (2, 2)]
)
def test_the_defect_sends_a_tenth_less_in_whole_tens(asked: int, sent: int) -> None:
    assert short_amount(asked) == sent


async def test_short_refunds_refund_less_and_answer_the_amount_asked() -> None:
    memory = InMemoryProvider()
    request = ChargeRequest("att_1", "ord_1", 4848, "EUR", "pm_card_visa", "u", "pay-att_1")
    paid = await memory.create_payment(request)
    assert paid.provider_ref is not None
    broken = ShortRefunds(memory)

    answer = await broken.refund(paid.provider_ref, amount=1610, idempotency_key="re-1")

    assert answer.amount == 1610  # what orderguard is told, and records
    assert [r.amount for r in memory.refunds] == [1450]  # what the provider gave back
    whole = await broken.refund(paid.provider_ref, amount=None, idempotency_key="re-2")
    assert whole.amount == 4848 - 1450  # "all that is left" is passed through untouched


def test_the_defect_is_a_known_setting_and_production_refuses_it() -> None:
    with pytest.raises(ConfigError, match="planted_defect must be one of"):
        Settings.load(env={"ORDERGUARD_PLANTED_DEFECT": "refund_amounts"})
    loaded = Settings.load(env={"ORDERGUARD_PLANTED_DEFECT": "refund_amount"})
    assert loaded.planted_defect == "refund_amount"
    settings = Settings(
        env="production",
        stripe_api_key="sk_live_shop",
        stripe_webhook_secret="whsec_k3mY7qP0vR2sT9wX4zB6nD8fH1jL5",
        public_url="https://shop.example",
        planted_defect="refund_amount",
    )
    [problem] = production_problems(settings, active_api_keys=1)
    assert (problem.setting, problem.problem) == (
        "ORDERGUARD_PLANTED_DEFECT",
        "is set (refund_amount)",
    )
