"""Fault profiles: named ones, TOML files, and refusal of unknown settings."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orderguard.providers import faults
from orderguard.providers.stripe.sandbox import PROFILES, load_profile
from orderguard.providers.stripe.sandbox.faults import FaultDice, FaultProfile, profile_from
from orderguard.providers.stripe.sandbox.forms import parse_form


def test_named_profiles_grow_harsher() -> None:
    assert load_profile("none") == FaultProfile()
    assert 0 < load_profile("flaky").error_after < load_profile("storm").error_after
    assert set(PROFILES) == {"none", "flaky", "storm"}


def test_a_toml_profile_starts_from_a_named_base(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text('[faults]\nbase = "flaky"\nerror_after = 0.5\nlatency_ms = [5, 10]\n')
    profile = load_profile(str(path))
    assert profile.error_after == 0.5
    assert profile.latency_ms == (5, 10)
    assert profile.webhook_drop == PROFILES["flaky"].webhook_drop


def test_unknown_settings_and_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("error_aftr = 0.5\n")
    with pytest.raises(ValueError, match="error_aftr"):
        load_profile(str(path))
    with pytest.raises(ValueError):
        load_profile("hurricane")


def test_dice_with_one_seed_roll_the_same() -> None:
    profile = PROFILES["storm"]
    a, b, other = FaultDice(3), FaultDice(3), FaultDice(4)
    rolls = [a.call(profile, mutating=True) for _ in range(50)]
    assert rolls == [b.call(profile, mutating=True) for _ in range(50)]
    assert rolls != [other.call(profile, mutating=True) for _ in range(50)]


def test_each_stream_is_seeded_once_and_keeps_its_sequence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream is made at its first draw and reused: seeding one hashes its name, which
    every call paid again while the dice made a new stream per draw and threw it away."""
    made: list[object] = []
    real = faults.random.Random

    class Counted(real):  # type: ignore[misc,valid-type]
        def __init__(self, seed: object) -> None:
            made.append(seed)
            super().__init__(seed)

    monkeypatch.setattr(faults.random, "Random", Counted)
    dice = FaultDice(7)
    draws = [dice.roll("error_after", 0.5) for _ in range(50)]
    assert made == ["7:error_after"]
    # the sequence is the seeded stream's own, draw after draw
    expected = real("7:error_after")
    assert draws == [expected.random() < 0.5 for _ in range(50)]
    for _ in range(20):
        dice.call(PROFILES["flaky"], mutating=True)
    # one stream more for each other kind a Stripe call draws, each made once
    kinds = {"latency", "latency_ms", "outage", "rate_limit", "error_before", "error_after",
             "timeout_after", "error_saved"}  # fmt: skip
    assert sorted(made) == sorted(f"7:{kind}" for kind in kinds), made


def test_stripe_form_encoding_is_decoded_into_nested_values() -> None:
    parsed = parse_form("amount=100&metadata[order_id]=o1&created[gte]=5&expand[]=a&expand[]=b")
    assert parsed == {
        "amount": "100",
        "metadata": {"order_id": "o1"},
        "created": {"gte": "5"},
        "expand": ["a", "b"],
    }


def test_the_stripe_like_settings_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "lag.toml"
    path.write_text('base = "storm"\nsearch_lag_s = 2\nerror_saved = 0.05\nrefund_pending = 0.5\n')
    profile = load_profile(str(path))
    assert (profile.search_lag_s, profile.error_saved, profile.refund_pending) == (2, 0.05, 0.5)
    assert profile.error_after == PROFILES["storm"].error_after
    assert FaultProfile().search_lag_s == 0  # no lag unless asked for


@pytest.mark.parametrize(
    "values",
    [
        {"search_lag_s": -1},
        {"search_lag_s": "2"},
        {"error_saved": 1.5},
        {"refund_pending": True},
        {"latency_ms": [10]},
        {"latency_ms": [20, 10]},
        {"limit": 1.5},
    ],
)
def test_settings_of_the_wrong_kind_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        profile_from(values)


async def test_the_fault_switch_refuses_them_with_a_400_naming_the_setting(
    sandbox_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        accepted = await http.post("/_sandbox/faults", json={"search_lag_s": 3})
        assert (accepted.status_code, accepted.json()["search_lag_s"]) == (200, 3)
        refused = await http.post("/_sandbox/faults", json={"search_lag_s": "soon"})
        assert refused.status_code == 400
        assert "search_lag_s" in refused.json()["error"]
