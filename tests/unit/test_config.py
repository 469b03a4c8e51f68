from __future__ import annotations

from pathlib import Path

import pytest

from orderguard.config import ConfigError, Settings


def test_the_defaults_run_with_nothing_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.load({})
    assert settings.database_url == "sqlite:///./orderguard.db"
    assert settings.default_country is None
    assert settings.idempotency_ttl.total_seconds() == 24 * 3600


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text('[orderguard]\ndefault_country = "de"\npublic_url = "https://a.example"\n')
    settings = Settings.load(
        {
            "ORDERGUARD_CONFIG": str(config),
            "ORDERGUARD_PUBLIC_URL": "https://b.example",
        }
    )
    assert (settings.default_country, settings.public_url) == ("DE", "https://b.example")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORDERGUARD_DEFAULT_COUNTRY": "Germany"}, "default_country"),
        ({"ORDERGUARD_IDEMPOTENCY_TTL_HOURS": "1"}, "at least 24"),
        ({"ORDERGUARD_DB_POOL_SIZE": "many"}, "whole number"),
        ({"ORDERGUARD_WAITING_CONCURRENCY": "0"}, "waiting_concurrency must be at least 1"),
        ({"ORDERGUARD_CONFIG": "/nonexistent/orderguard.toml"}, "does not exist"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env)


def test_unknown_file_settings_are_refused_naming_the_nearest_one(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text("[orderguard]\ndatabase_ulr = 'typo'\n")
    with pytest.raises(ConfigError, match="database_ulr") as refused:
        Settings.load({"ORDERGUARD_CONFIG": str(config)})
    assert str(refused.value).endswith("did you mean database_url?")


def test_a_misspelt_variable_is_refused_naming_the_nearest_one() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load({"ORDERGUARD_STRIPE_APIKEY": "sk_live_x"})
    assert str(refused.value) == (
        "unknown setting ORDERGUARD_STRIPE_APIKEY: did you mean ORDERGUARD_STRIPE_API_KEY?"
    )


def test_an_unknown_variable_far_from_every_name_is_refused_without_a_guess() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load({"ORDERGUARD_ZZZ": "1"})
    assert str(refused.value) == "unknown setting ORDERGUARD_ZZZ"


def test_variables_read_outside_the_settings_are_not_unknown(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text("[orderguard]\n")
    readers = {
        "ORDERGUARD_CONFIG": str(config),  # the loader itself
        "ORDERGUARD_LOG_LEVEL": "debug",  # the logging set-up
        "ORDERGUARD_LOG_FORMAT": "json",
        "ORDERGUARD_TEST_POSTGRES": "postgresql://127.0.0.1/x",  # the test suite
        "ORDERGUARD_CRASH_SEED": "7",
        "ORDERGUARD_ENV": "development",
        "ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET": "whsec_failover",
    }
    assert Settings.load(readers).secondary_stripe_webhook_secret == "whsec_failover"


def test_webhook_secrets_have_no_default_any_more() -> None:
    settings = Settings()
    assert settings.stripe_webhook_secret is None
    assert settings.secondary_stripe_webhook_secret is None


def test_every_setting_is_read_as_its_declared_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no orderguard.toml here
    settings = Settings.load(
        {
            "ORDERGUARD_JANITOR_LEASE_S": "3",
            "ORDERGUARD_WORKER_ROUND_S": "0.2",
            "ORDERGUARD_BREAKER_THRESHOLD": "2",
            "ORDERGUARD_SWEEP_AUTO_REFUND": "off",
        }
    )
    assert (settings.janitor_lease_s, settings.worker_round_s) == (3.0, 0.2)
    assert (settings.breaker_threshold, settings.sweep_auto_refund) == (2, False)
    with pytest.raises(ConfigError, match="janitor_lease_s"):
        Settings.load({"ORDERGUARD_JANITOR_LEASE_S": "soon"})
