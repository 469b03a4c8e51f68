"""``orderguard sandbox-provider --provider NAME --print-config``: the settings that point
orderguard at a sandbox, which orderguard's own configuration accepts as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orderguard.cli import main
from orderguard.config import Settings
from orderguard.providers import labs, registry


def _lines(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.strip().splitlines()]
    assert all(len(pair) == 2 for pair in pairs), text
    return dict((name, value) for name, value in pairs)


def test_the_stripe_sandbox_s_config_names_its_key_address_and_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "sandbox-provider", "--print-config", "--port", "8123",
            "--db", str(tmp_path / "ledger.db"), "--webhook-secret", "whsec_given",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _lines(result.output) == {
        "ORDERGUARD_STRIPE_API_KEY": "sk_test_orderguard_sandbox",
        "ORDERGUARD_STRIPE_BASE_URL": "http://127.0.0.1:8123",
        "ORDERGUARD_STRIPE_WEBHOOK_SECRET": "whsec_given",
    }


def test_an_unknown_provider_is_refused() -> None:
    result = CliRunner().invoke(main, ["sandbox-provider", "--provider", "nope", "--print-config"])
    assert result.exit_code == 2
    assert "nope" in result.output


@pytest.mark.parametrize("provider", labs.names())
def test_each_sandbox_s_config_is_accepted_and_points_at_it(tmp_path: Path, provider: str) -> None:
    text = labs.sandbox_config(provider, "127.0.0.1", 8124, str(tmp_path / "ledger.db"), "whsec_s")
    env = _lines(text)
    assert env and all(name.startswith("ORDERGUARD_") for name in env)
    settings = Settings.load(env=env)  # refuses a name it does not know
    [account] = [a for p, a in registry.accounts(settings) if p.name == provider and a.primary]
    assert account.api_key, env
    assert account.base_url.startswith("http://127.0.0.1:8124"), account.base_url
    for name, value in env.items():  # the key files it names were made at first start
        if name.endswith(("_FILE", "_CERTIFICATES")):
            assert Path(value).is_file(), (name, value)
    # a second run reads the same identity rather than making another
    assert (
        labs.sandbox_config(provider, "127.0.0.1", 8124, str(tmp_path / "ledger.db"), "whsec_s")
        == text
    )


@pytest.mark.parametrize(("provider", "said"), [("stripe", True), ("alipay", False)])
def test_the_shared_webhook_secret_is_printed_only_for_a_sandbox_that_signs_with_it(
    monkeypatch: pytest.MonkeyPatch, provider: str, said: bool
) -> None:
    served: list[str] = []
    monkeypatch.setattr(labs, "serve_sandbox", lambda *args, **kw: served.append(kw["provider"]))
    result = CliRunner().invoke(main, ["sandbox-provider", "--provider", provider])
    assert result.exit_code == 0, result.output
    assert served == [provider]
    assert ("webhooks are signed with" in result.output) is said
