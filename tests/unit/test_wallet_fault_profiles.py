"""The wallet sandboxes' fault profiles: the Stripe sandbox's names with the same call
faults, TOML files, refusal of wrong settings, one seed one sequence, and selection by
``--faults`` (the command line, the lab, ``python -m``)."""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orderguard.cli import main
from orderguard.providers import labs
from orderguard.providers.alipay.sandbox import server as alipay_server
from orderguard.providers.faults import NO_CALL_FAULTS, CallProfile
from orderguard.providers.stripe.sandbox.faults import PROFILES as STRIPE_PROFILES
from orderguard.providers.stripe.sandbox.faults import FaultDice
from orderguard.providers.wallet_faults import (
    PROFILES,
    FaultInjector,
    load_profile,
    profile_from,
)
from orderguard.providers.wechatpay.sandbox import __main__ as wechat_main
from orderguard.providers.wechatpay.sandbox import server as wechat_server

CALL_FIELDS = [f.name for f in fields(CallProfile)]


def test_the_wallets_have_the_stripe_names_and_their_call_faults() -> None:
    assert set(PROFILES) == set(STRIPE_PROFILES) == {"none", "flaky", "storm"}
    for name, profile in PROFILES.items():
        stripe = STRIPE_PROFILES[name]
        assert [getattr(profile, f) for f in CALL_FIELDS] == [
            getattr(stripe, f) for f in CALL_FIELDS
        ]
    flaky, storm = PROFILES["flaky"], PROFILES["storm"]
    for wallet_fault in ("notify_drop", "notify_before_query", "query_system_error", "close_race"):
        assert 0 == getattr(PROFILES["none"], wallet_fault) < getattr(flaky, wallet_fault)
        assert getattr(flaky, wallet_fault) < getattr(storm, wallet_fault)


def test_a_toml_profile_starts_from_a_named_base(tmp_path: Path) -> None:
    path = tmp_path / "wallet.toml"
    path.write_text('[faults]\nbase = "flaky"\nclose_race = 0.5\nnotify_delay_ms = [5, 10]\n')
    profile = load_profile(str(path))
    assert (profile.close_race, profile.notify_delay_ms) == (0.5, (5, 10))
    assert profile.notify_drop == PROFILES["flaky"].notify_drop


@pytest.mark.parametrize(
    "values",
    [
        {"close_race": 1.5},
        {"before_query_s": -1},
        {"notify_delay_ms": [10]},
        {"notify_dropp": 0.1},
        {"webhook_drop": 0.1},  # Stripe's word, not the wallets'
        {"base": "hurricane"},
        {"limit": 0.5},
    ],
)
def test_wrong_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        profile_from(values)


def test_an_unknown_name_that_is_no_file_is_refused() -> None:
    with pytest.raises(ValueError, match="none, flaky, storm"):
        load_profile("hurricane")


def _run(injector: FaultInjector) -> list[Any]:
    """Forty calls, notifications and closes, as decided."""
    decided: list[Any] = []
    for n in range(40):
        decided.append(injector.call(mutating=n % 2 == 0))
        decided.append(injector.delivery(f"n{n}"))
        decided.append(injector.close_race())
        decided.append(injector.query_system_error(f"t{n}"))
    return decided


def test_one_seed_rolls_one_sequence_of_faults() -> None:
    storm = PROFILES["storm"]
    first, again, other = FaultInjector(storm, 3), FaultInjector(storm, 3), FaultInjector(storm, 4)
    assert _run(first) == _run(again)
    assert first.log == again.log and first.log
    assert _run(FaultInjector(storm, 3)) != _run(other)


def test_a_seed_gives_the_stripe_sandbox_the_faults_it_gave_before_the_dice_were_shared() -> None:
    storm = STRIPE_PROFILES["storm"]
    decided = FaultDice(7).call(storm, mutating=True)
    # the streams as the Stripe sandbox always named them: "<seed>:<fault>"
    slow = random.Random("7:latency").random() < storm.latency
    amount = random.Random("7:latency_ms").randint(*storm.latency_ms)
    assert decided.latency_ms == (amount if slow else 0)
    assert decided.error_saved is (random.Random("7:error_saved").random() < storm.error_saved)
    webhook = FaultDice(7).webhook(storm)
    assert webhook.drop is (random.Random("7:webhook_drop").random() < storm.webhook_drop)


def test_call_faults_stop_after_the_profiles_limit() -> None:
    injector = FaultInjector(profile_from({"error_before": 1, "limit": 2}))
    assert [injector.call(mutating=False).error_before for _ in range(2)] == [True, True]
    assert injector.call(mutating=False) == NO_CALL_FAULTS
    injector.profile = profile_from({"error_before": 1, "limit": 1})  # counts afresh
    assert injector.call(mutating=False).error_before
    assert injector.call(mutating=False) == NO_CALL_FAULTS


def test_the_limit_counts_only_the_calls_a_fault_struck() -> None:
    # a write-only fault: reads pass untouched and leave it armed for the first write
    injector = FaultInjector(profile_from({"timeout_after": 1, "latency": 1, "limit": 1}))
    reads = [injector.call(mutating=False) for _ in range(3)]
    assert [r.timeout_after for r in reads] == [False] * 3
    assert all(r.latency_ms > 0 for r in reads)  # latency struck them, and is not counted
    assert injector.call(mutating=True).timeout_after
    assert injector.call(mutating=True) == NO_CALL_FAULTS  # used up: latency stops too


async def test_an_outage_refuses_every_call_in_its_window_until_the_profile_changes() -> None:
    now = [0.0]
    injector = FaultInjector(profile_from({"outage": 1, "outage_s": 5}), clock=lambda: now[0])
    assert await injector.before(injector.call(mutating=False), "q") == "outage"
    injector.profile = profile_from({"outage_s": 5})  # no new outage begins
    now[0] = 1.0
    assert await injector.before(injector.call(mutating=False), "q") is None
    assert injector.counts() == {"outage": 1}


def test_the_query_lags_a_payment_for_its_window_only() -> None:
    now = [100.0]
    injector = FaultInjector(
        profile_from({"notify_before_query": 1, "before_query_s": 2}), clock=lambda: now[0]
    )
    assert not injector.lagging("t1")
    injector.paid("t1")
    now[0] += 1.9
    assert injector.lagging("t1") and not injector.lagging("t2")
    now[0] += 0.2
    assert not injector.lagging("t1")
    assert injector.counts() == {"notify_before_query": 1}


def test_only_writes_lose_their_answer() -> None:
    injector = FaultInjector(profile_from({"error_after": 1, "timeout_after": 1}))
    read, write = injector.call(mutating=False), injector.call(mutating=True)
    assert (read.error_after, read.timeout_after) == (False, False)
    assert (write.error_after, write.timeout_after) == (True, True)


@pytest.mark.parametrize("provider", ["alipay", "wechatpay", "stripe"])
def test_a_faults_option_naming_no_profile_is_refused_before_a_sandbox_starts(
    provider: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        ["sandbox-provider", "--provider", provider, "--faults", "hurricane",
         "--db", str(tmp_path / "x.db"), "--webhook-secret", "whsec_x"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "hurricane" in result.output


@pytest.mark.parametrize("server", [alipay_server, wechat_server], ids=["alipay", "wechatpay"])
def test_the_lab_serves_the_profile_and_seed_it_is_given(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(server, "create_app", lambda config: config)
    monkeypatch.setattr(server, "serve_forever", lambda app, host, port: served.append(app))
    provider = "alipay" if server is alipay_server else "wechatpay"
    labs.serve_sandbox(
        "127.0.0.1", 8100, "flaky", 5, str(tmp_path / "x.db"), None, "s", provider=provider
    )
    [config] = served
    assert (config.faults, config.seed) == (PROFILES["flaky"], 5)


def test_python_m_refuses_a_faults_option_naming_no_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for run in (alipay_server.main, wechat_main.main):
        with pytest.raises(SystemExit) as exited:
            run(["--faults", "hurricane"])
        assert exited.value.code == 2
        assert "hurricane" in capsys.readouterr().err
