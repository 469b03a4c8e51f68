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


def test_unknown_file_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text("[orderguard]\ndatabase_ulr = 'typo'\n")
    with pytest.raises(ConfigError, match="database_ulr"):
        Settings.load({"ORDERGUARD_CONFIG": str(config)})


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
