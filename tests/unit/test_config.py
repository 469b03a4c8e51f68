from __future__ import annotations

from datetime import timedelta
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


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("ORDERGUARD_env", "ORDERGUARD_ENV"),
        ("orderguard_env", "ORDERGUARD_ENV"),
        ("Orderguard_Stripe_Api_Key", "ORDERGUARD_STRIPE_API_KEY"),
        ("ORDERGAURD_ENV", "ORDERGUARD_ENV"),
        ("ORDERGUARD-ENV", "ORDERGUARD_ENV"),
        ("ORDREGUARD_STRIPE_WEBHOOK_SECRET", "ORDERGUARD_STRIPE_WEBHOOK_SECRET"),
    ],
)
def test_a_variable_meant_for_orderguard_in_another_case_or_misspelt_prefix_is_refused(
    name: str, meant: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load({name: "production"})
    assert str(refused.value) == f"unknown setting {name}: did you mean {meant}?"


def test_variables_of_other_programs_are_left_alone(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text("[orderguard]\n")
    others = {"ORDER_ID": "1", "GUARD_DOG": "x", "ORDERGUARD": "x", "ORDERGUARDIANSHIP_X": "1"}
    assert Settings.load({"ORDERGUARD_CONFIG": str(config), **others}).env == "development"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('env = "production"\n', "key env is outside the [orderguard] table"),
        ('[orderguad]\nenv = "production"\n', "table [orderguad] is outside the [orderguard]"),
        ('env = "production"\n[orderguard]\n', "key env is outside the [orderguard] table"),
        ('orderguard = "production"\n', "orderguard must be a table"),
    ],
)
def test_a_config_file_with_settings_outside_its_table_is_refused(
    tmp_path: Path, document: str, message: str
) -> None:
    config = tmp_path / "og.toml"
    config.write_text(document)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings.load({"ORDERGUARD_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("stripe_api_key = 12", "stripe_api_key in the config file must be text, not 12"),
        ('public_url = ["https://a"]', "public_url in the config file must be text"),
        ('allow_http = "yes"', "allow_http in the config file must be true or false"),
        ('db_pool_size = "10"', "db_pool_size in the config file must be a whole number"),
        ("payment_time_budget_s = true", "payment_time_budget_s in the config file must be a num"),
    ],
)
def test_a_config_file_value_of_the_wrong_type_is_refused(
    tmp_path: Path, line: str, message: str
) -> None:
    config = tmp_path / "og.toml"
    config.write_text(f"[orderguard]\n{line}\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        Settings.load({"ORDERGUARD_CONFIG": str(config)})


def test_config_file_values_of_the_right_type_are_read(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text(
        "[orderguard]\nallow_http = true\ndb_pool_size = 3\npayment_time_budget_s = 4\n"
    )
    settings = Settings.load({"ORDERGUARD_CONFIG": str(config)})
    assert (settings.allow_http, settings.db_pool_size, settings.payment_time_budget_s) == (
        True,
        3,
        4.0,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PAYMENT_TIME_BUDGET_S", "nan", "payment_time_budget_s must be a finite number"),
        ("PAYMENT_TIME_BUDGET_S", "-1", "payment_time_budget_s must be a finite number"),
        ("PAYMENT_TIME_BUDGET_S", "inf", "payment_time_budget_s must be a finite number"),
        ("PAYMENT_TIME_BUDGET_S", "0", "payment_time_budget_s must be more than 0"),
        ("CONSOLE_LOCKOUT_MINUTES", "0", "console_lockout_minutes must be more than 0"),
        ("CONSOLE_MAX_FAILED_LOGINS", "0", "console_max_failed_logins must be at least 1"),
        ("OUTBOX_MAX_ATTEMPTS", "0", "outbox_max_attempts must be at least 1"),
    ],
)
def test_a_number_that_cannot_work_is_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load({f"ORDERGUARD_{name}": value})


def test_retention_keeps_delivered_outbox_rows_30_days_and_webhook_bodies_90_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.load({})
    assert settings.outbox_retention == timedelta(days=30)
    assert settings.webhook_body_retention == timedelta(days=90)
    assert settings.retention_batch == 1000


def test_a_retention_of_zero_keeps_rows_forever() -> None:
    settings = Settings.load(
        {"ORDERGUARD_OUTBOX_RETENTION_DAYS": "0", "ORDERGUARD_WEBHOOK_BODY_RETENTION_DAYS": "0"}
    )
    assert (settings.outbox_retention, settings.webhook_body_retention) == (None, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORDERGUARD_OUTBOX_RETENTION_DAYS": "-1"}, "outbox_retention_days must be 0 .* not -1"),
        ({"ORDERGUARD_OUTBOX_RETENTION_DAYS": "0.5"}, "outbox_retention_days must be a whole"),
        ({"ORDERGUARD_WEBHOOK_BODY_RETENTION_DAYS": "-30"}, "webhook_body_retention_days"),
        ({"ORDERGUARD_WEBHOOK_BODY_RETENTION_DAYS": "100000"}, "1 to 36500 days"),
        ({"ORDERGUARD_RETENTION_BATCH": "0"}, "retention_batch must be at least 1"),
        ({"ORDERGUARD_RETENTION_BATCH": "1000000"}, "retention_batch must be at most 10000"),
        (
            {"ORDERGUARD_OUTBOX_RETENTION_DAYS": "1", "ORDERGUARD_OUTBOX_BACKFILL_HOURS": "48"},
            "outbox_backfill_hours must be shorter than outbox_retention_days",
        ),
    ],
)
def test_a_retention_that_cannot_work_is_refused_at_start(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env)


def test_retention_set_in_the_file_is_read(tmp_path: Path) -> None:
    config = tmp_path / "og.toml"
    config.write_text("[orderguard]\noutbox_retention_days = 7\nwebhook_body_retention_days = 1\n")
    settings = Settings.load({"ORDERGUARD_CONFIG": str(config)})
    assert (settings.outbox_retention, settings.webhook_body_retention) == (
        timedelta(days=7),
        timedelta(days=1),
    )
