"""``serve``, ``worker`` and ``doctor`` refuse a configuration they cannot run safely:
exit code 2 and one line on stderr naming the setting and its fix (real subprocesses)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import Server, clean_env, run_cli, serving

pytestmark = pytest.mark.timeout(120)

#: A production deployment that lacks nothing (but an API key, created per test): a staging
#: one, with a test key at a provider on loopback, which it says it means.
SAFE = {
    "ORDERGUARD_ENV": "production",
    "ORDERGUARD_ALLOW_TEST_PROVIDER": "true",
    "ORDERGUARD_STRIPE_API_KEY": "sk_test_production_shop",
    "ORDERGUARD_STRIPE_BASE_URL": "http://127.0.0.1:9",
    "ORDERGUARD_STRIPE_WEBHOOK_SECRET": "whsec_k3mY7qP0vR2sT9wX4zB6nD8fH1jL5",
    "ORDERGUARD_PUBLIC_URL": "https://shop.example",
}
LONG_RUNNING = ("serve", "worker", "doctor")


def refused(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``orderguard ARGS``; assert exit 2 and one line on stderr; return that line."""
    done = run_cli(*args, env=env, cwd=cwd)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def with_key(sqlite_url: str, tmp_path: Path) -> None:
    created = run_cli("keys", "create", "shop", env=clean_env(sqlite_url), cwd=tmp_path)
    assert created.returncode == 0, created.stderr


@pytest.mark.parametrize("command", LONG_RUNNING)
def test_a_misspelt_variable_is_refused_at_start_naming_the_nearest_setting(
    command: str, sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_env(sqlite_url, ORDERGUARD_STRIPE_APIKEY="sk_live_typo")
    line = refused([command], env, tmp_path)
    assert line == (
        "orderguard: configuration: unknown setting ORDERGUARD_STRIPE_APIKEY: "
        "did you mean ORDERGUARD_STRIPE_API_KEY?"
    )
    assert not (tmp_path / "orderguard.db").exists()  # nothing was started


def test_a_misspelt_key_in_the_config_file_is_refused_at_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "orderguard.toml").write_text('[orderguard]\nstripe_webhook_secrte = "whsec_x"\n')
    line = refused(["serve"], clean_env(sqlite_url), tmp_path)
    assert "unknown setting stripe_webhook_secrte" in line
    assert line.endswith("did you mean stripe_webhook_secret?")


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"ORDERGUARD_STRIPE_API_KEY": ""},
            "orderguard: production: ORDERGUARD_STRIPE_API_KEY is not set: configure a real "
            "provider account (the in-process sandbox is for development only)",
        ),
        (
            {"ORDERGUARD_STRIPE_WEBHOOK_SECRET": "whsec_sandbox"},
            "orderguard: production: ORDERGUARD_STRIPE_WEBHOOK_SECRET is a public default or "
            "placeholder: set the signing secret (whsec_...) of this account's webhook endpoint",
        ),
        (
            {"ORDERGUARD_STRIPE_WEBHOOK_SECRET": ""},
            "orderguard: production: ORDERGUARD_STRIPE_WEBHOOK_SECRET is not set: set the "
            "signing secret (whsec_...) of this account's webhook endpoint",
        ),
        (
            {"ORDERGUARD_SECONDARY_STRIPE_API_KEY": "sk_test_failover"},
            "orderguard: production: ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET is not set: set "
            "the signing secret (whsec_...) of this account's webhook endpoint",
        ),
        (
            {"ORDERGUARD_PUBLIC_URL": "http://shop.example"},
            "orderguard: production: ORDERGUARD_PUBLIC_URL is not https (http://shop.example): "
            "give the https address shoppers use, or set ORDERGUARD_ALLOW_HTTP=true when a "
            "TLS-terminating proxy on this host forwards to orderguard",
        ),
    ],
)
def test_production_refuses_each_unsafe_setting_with_one_line(
    command: str, change: dict[str, str], expected: str, sqlite_url: str, tmp_path: Path
) -> None:
    with_key(sqlite_url, tmp_path)
    env = clean_env(sqlite_url, **{**SAFE, **change})
    env = {k: v for k, v in env.items() if v != "" or k == "ORDERGUARD_STRIPE_WEBHOOK_SECRET"}
    assert refused([command], env, tmp_path) == expected


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_refuses_to_start_without_an_api_key(
    command: str, sqlite_url: str, tmp_path: Path
) -> None:
    line = refused([command], clean_env(sqlite_url, **SAFE), tmp_path)
    assert line == (
        "orderguard: production: API key is missing (none is active): create one with "
        "`orderguard keys create NAME` (against the same database)"
    )


def test_production_starts_behind_a_tls_proxy_on_http_when_told_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    with_key(sqlite_url, tmp_path)
    env = clean_env(sqlite_url, **SAFE)
    server = Server(env={}, cwd=tmp_path)
    server.env = {**env, "ORDERGUARD_PUBLIC_URL": server.url, "ORDERGUARD_ALLOW_HTTP": "true"}
    try:
        server.start()  # answers /healthz
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()


def test_doctor_lists_every_production_refusal_with_its_fix(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert run_cli("migrate", env=clean_env(sqlite_url), cwd=tmp_path).returncode == 0
    env = clean_env(
        sqlite_url, ORDERGUARD_ENV="production", ORDERGUARD_PUBLIC_URL="http://shop.example"
    )
    done = run_cli("doctor", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert done.stderr.strip().splitlines() == [
        "orderguard: production: ORDERGUARD_STRIPE_API_KEY is not set: configure a real "
        "provider account (the in-process sandbox is for development only)"
    ]
    failures = [line for line in done.stdout.splitlines() if line.startswith("[FAIL] production")]
    assert failures == [
        "[FAIL] production ORDERGUARD_STRIPE_API_KEY: ORDERGUARD_STRIPE_API_KEY is not set  -> "
        "configure a real provider account (the in-process sandbox is for development only)",
        "[FAIL] production API key: API key is missing (none is active)  -> create one with "
        "`orderguard keys create NAME` (against the same database)",
        "[FAIL] production ORDERGUARD_PUBLIC_URL: ORDERGUARD_PUBLIC_URL is not https "
        "(http://shop.example)  -> give the https address shoppers use, or set "
        "ORDERGUARD_ALLOW_HTTP=true when a TLS-terminating proxy on this host forwards to "
        "orderguard",
    ]


def test_development_starts_with_nothing_configured_and_says_it_is_test_mode(
    sqlite_url: str, tmp_path: Path
) -> None:
    with serving(clean_env(sqlite_url), tmp_path) as server:
        page = httpx.get(f"{server.url}/console/login", timeout=10)
    assert page.status_code == 200
    assert "TEST MODE — no money moves" in page.text


def test_development_serve_warns_once_that_an_account_without_a_secret_refuses_webhooks(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_env(
        sqlite_url,
        ORDERGUARD_STRIPE_API_KEY="sk_test_no_secret",
        ORDERGUARD_STRIPE_BASE_URL="http://127.0.0.1:9",
    )
    with serving(env, tmp_path) as server:
        pass
    warning = "ORDERGUARD_STRIPE_WEBHOOK_SECRET is not set: every webhook from this account"
    assert server.log().count(warning) == 1, server.log()


# --- review of issue 15: a live key, a test key, the config file's table ----------------


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_development_refuses_to_start_with_a_live_key(
    command: str, sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_env(
        sqlite_url,
        ORDERGUARD_STRIPE_API_KEY="sk_live_51realLooking",
        ORDERGUARD_STRIPE_BASE_URL="http://127.0.0.1:9",
        ORDERGUARD_STRIPE_WEBHOOK_SECRET="whsec_abcdef123456",
    )
    assert refused([command], env, tmp_path) == (
        "orderguard: development: ORDERGUARD_STRIPE_API_KEY is a live key: set "
        "ORDERGUARD_ENV=production (live money is never development), or use a test key"
    )
    assert not (tmp_path / "orderguard.db").exists()  # refused before the database


def test_doctor_fails_a_live_key_in_development(sqlite_url: str, tmp_path: Path) -> None:
    env = clean_env(
        sqlite_url,
        ORDERGUARD_STRIPE_API_KEY="sk_live_51realLooking",
        ORDERGUARD_STRIPE_BASE_URL="http://127.0.0.1:9",
    )
    done = run_cli("doctor", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert (
        "[FAIL] development ORDERGUARD_STRIPE_API_KEY: ORDERGUARD_STRIPE_API_KEY is a live key"
        in done.stdout
    )
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("orderguard: development: ORDERGUARD_STRIPE_API_KEY is a live key: ")
    )


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_refuses_a_test_key_unless_the_staging_opt_in_is_set(
    command: str, sqlite_url: str, tmp_path: Path
) -> None:
    with_key(sqlite_url, tmp_path)
    env = clean_env(sqlite_url, **SAFE)
    del env["ORDERGUARD_ALLOW_TEST_PROVIDER"]
    assert refused([command], env, tmp_path) == (
        "orderguard: production: ORDERGUARD_STRIPE_API_KEY is not a live key: give the "
        "account's live key (sk_live_...) at https://api.stripe.com, or set "
        "ORDERGUARD_ALLOW_TEST_PROVIDER=true for a staging deployment that takes no real money"
    )


def test_production_with_the_staging_opt_in_starts_with_a_test_key(
    sqlite_url: str, tmp_path: Path
) -> None:
    with_key(sqlite_url, tmp_path)
    server = Server(env={}, cwd=tmp_path)
    server.env = {
        **clean_env(sqlite_url, **SAFE),
        "ORDERGUARD_PUBLIC_URL": server.url,
        "ORDERGUARD_ALLOW_HTTP": "true",
    }
    assert server.env["ORDERGUARD_STRIPE_API_KEY"].startswith("sk_test_")
    try:
        server.start()
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()


def test_production_refuses_the_planted_double_charge_defect(
    sqlite_url: str, tmp_path: Path
) -> None:
    with_key(sqlite_url, tmp_path)
    env = clean_env(sqlite_url, **SAFE, ORDERGUARD_PLANTED_DEFECT="recharge_unknown")
    assert refused(["serve"], env, tmp_path).startswith(
        "orderguard: production: ORDERGUARD_PLANTED_DEFECT is set (recharge_unknown): "
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ('env = "production"\n', "key env is outside the [orderguard] table"),
        ('[orderguad]\nenv = "production"\n', "table [orderguad] is outside the [orderguard]"),
    ],
)
def test_a_config_file_with_a_setting_outside_its_table_is_refused_at_start(
    document: str, expected: str, sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "orderguard.toml").write_text(document)
    line = refused(["serve"], clean_env(sqlite_url), tmp_path)
    assert line.startswith("orderguard: configuration: orderguard.toml: ")
    assert expected in line


def test_a_lower_case_mode_variable_is_refused_not_ignored(sqlite_url: str, tmp_path: Path) -> None:
    env = {**clean_env(sqlite_url), "orderguard_env": "production"}
    assert refused(["serve"], env, tmp_path) == (
        "orderguard: configuration: unknown setting orderguard_env: did you mean ORDERGUARD_ENV?"
    )
