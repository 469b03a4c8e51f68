"""The provider registry: one entry per provider package, and what the rest of orderguard
reads from it (accounts and their variables, methods, live keys, credentials, settlement
report formats); the lab registry beside it, which alone reaches a sandbox."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import grimp

from orderguard.bootstrap import offered_to_faces
from orderguard.config import Settings, known_variables
from orderguard.observability.redaction import redact_text
from orderguard.providers import labs, registry
from orderguard.providers.profile import ProviderProfile, json_ack, plain_ack

SRC = Path(__file__).resolve().parents[2] / "src"


def test_stripe_is_registered_as_a_card_provider() -> None:
    stripe = registry.plugin("stripe")
    assert stripe.profile.takes("pm_card_visa")
    assert not stripe.profile.takes("alipay_page")
    assert {"pm_card_visa", "pm_card_chargeDeclined"} <= set(registry.test_methods())


def test_the_wallets_are_registered_after_stripe_each_taking_its_own_methods() -> None:
    assert [p.name for p in registry.PLUGINS] == ["stripe", "alipay", "wechatpay"]
    takers = {
        method: [p.name for p in registry.PLUGINS if p.profile.takes(method)]
        for method in ("pm_card_visa", "alipay_page", "alipay_wap", "wechatpay_native")
    }
    assert takers == {
        "pm_card_visa": ["stripe"],
        "alipay_page": ["alipay"],
        "alipay_wap": ["alipay"],
        "wechatpay_native": ["wechatpay"],
    }
    assert [lab.provider for lab in labs.LABS] == ["stripe", "alipay", "wechatpay"]
    assert labs.lab().provider == "stripe"  # development and the demo still run Stripe's


def test_stripe_declares_its_recheck_capabilities_and_limits() -> None:
    can = registry.plugin("stripe").profile.capabilities
    assert (can.retrieve_by_reference, can.find_by_order_id, can.list_recent_charges) == (
        True,
        True,
        True,
    )
    assert can.key_retention.total_seconds() == 23 * 3600  # Stripe keeps keys 24 h
    assert (can.metadata.keys, can.metadata.key_chars, can.metadata.value_chars) == (50, 40, 500)


def test_the_accounts_come_from_the_provider_settings_with_their_public_names() -> None:
    settings = Settings(
        stripe_api_key="sk_live_main",
        stripe_webhook_secret="whsec_main",
        secondary_stripe_api_key="sk_test_failover",
        secondary_stripe_base_url="http://127.0.0.1:8100",
    )
    found = [(p.name, a.name, a.variables, a.primary) for p, a in registry.accounts(settings)]
    assert found == [
        ("stripe", "stripe", "ORDERGUARD_STRIPE", True),
        ("alipay", "alipay", "ORDERGUARD_ALIPAY", True),
        ("wechatpay", "wechatpay", "ORDERGUARD_WECHATPAY", True),
        ("stripe", "stripe-secondary", "ORDERGUARD_SECONDARY_STRIPE", False),
    ]
    main, _, _, failover = (a for _, a in registry.accounts(settings))
    assert (main.api_key, main.base_url, main.webhook_secret) == (
        "sk_live_main",
        "https://api.stripe.com",
        "whsec_main",
    )
    assert failover.variable("BASE_URL") == "ORDERGUARD_SECONDARY_STRIPE_BASE_URL"
    assert failover.base_url == "http://127.0.0.1:8100"
    assert [registry.is_live_key(a) for a in (main, failover)] == [True, False]
    assert registry.has_real_account(settings)
    assert not registry.has_real_account(Settings())
    assert [a.name for _, a in registry.configured(Settings())] == []
    assert [a.name for _, a in registry.configured(settings)] == ["stripe", "stripe-secondary"]


def test_the_public_settings_names_stay_exactly() -> None:
    names = {
        "ORDERGUARD_STRIPE_API_KEY",
        "ORDERGUARD_STRIPE_BASE_URL",
        "ORDERGUARD_STRIPE_WEBHOOK_SECRET",
        "ORDERGUARD_SECONDARY_STRIPE_API_KEY",
        "ORDERGUARD_SECONDARY_STRIPE_BASE_URL",
        "ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET",
        "ORDERGUARD_SANDBOX_DB",
        "ORDERGUARD_SANDBOX_FAULTS",
    }
    assert names <= set(known_variables())
    loaded = Settings.load(
        {"ORDERGUARD_STRIPE_API_KEY": "sk_test_x", "ORDERGUARD_SANDBOX_FAULTS": "storm"}
    )
    assert (loaded.stripe_api_key, loaded.sandbox_faults) == ("sk_test_x", "storm")
    assert {"stripe_api_key", "secondary_stripe_webhook_secret"} <= {
        f.name for f in fields(Settings)
    }


def test_a_demo_process_is_pointed_at_a_sandbox_by_the_public_variables() -> None:
    env = labs.sandbox_env("http://127.0.0.1:9", "whsec_demo_own")
    assert env["ORDERGUARD_STRIPE_BASE_URL"] == "http://127.0.0.1:9"
    assert env["ORDERGUARD_STRIPE_WEBHOOK_SECRET"] == "whsec_demo_own"
    assert env["ORDERGUARD_STRIPE_API_KEY"].startswith("sk_test_")
    assert labs.sandbox_route() == "stripe"


def test_logs_and_the_console_hide_the_registered_providers_credentials() -> None:
    text = "key sk_live_abc123 and whsec_s3cr3t, client pi_1_secret_2"
    hidden = offered_to_faces().credentials.hidden  # the console's, as serve wires it
    for shown in (redact_text(text), hidden(text)):
        assert "sk_live_abc123" not in shown
        assert "whsec_s3cr3t" not in shown
        assert "pi_1_secret_2" not in shown
    assert "t=1,v1=abc" not in hidden('{"Stripe-Signature": "t=1,v1=abc"}')


def test_a_reply_is_json_or_a_plain_body() -> None:
    ack = json_ack(duplicate=True)
    assert (ack.status, ack.media_type, ack.body) == (
        200,
        "application/json",
        b'{"received":true,"duplicate":true}',
    )
    plain = plain_ack("success")(duplicate=False)
    assert (plain.status, plain.media_type, plain.body) == (200, "text/plain", b"success")
    stripe: ProviderProfile = registry.plugin("stripe").profile
    assert stripe.reply(duplicate=False).media_type == "application/json"


def _naming_stripe() -> set[str]:
    """``grep -rli stripe src/orderguard --include=*.py | grep -v '^src/orderguard/providers/'``."""
    root = SRC.parent
    return {
        str(path.relative_to(root))
        for path in (SRC / "orderguard").rglob("*.py")
        if "stripe" in path.read_text(encoding="utf-8").lower()
        and not str(path.relative_to(root)).startswith("src/orderguard/providers/")
    }


def test_nothing_outside_providers_names_stripe() -> None:
    assert _naming_stripe() == set()


def test_the_configuration_and_the_registry_import_no_sandbox() -> None:
    """In a fresh interpreter: production code reads the registry, never the lab."""
    code = (
        "import sys, orderguard.config, orderguard.providers.registry\n"
        "print(sorted(m for m in sys.modules if m.startswith('orderguard.providers.stripe.sandbox')"
        " or m in ('orderguard.providers.labs', 'orderguard.providers.stripe.lab')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"


def _is_lab(module: str) -> bool:
    parts = module.split(".")
    return "sandbox" in parts or parts[-1] in ("lab", "labs")


def test_no_provider_module_but_a_lab_reaches_a_sandbox() -> None:
    """Counting imports inside functions: only the lab modules (``labs``, ``<provider>.lab``)
    and the sandboxes themselves import a sandbox module."""
    graph = grimp.build_graph("orderguard")
    importers = {
        importer
        for module in graph.modules
        if module.startswith("orderguard.providers.") and "sandbox" in module.split(".")
        for importer in graph.find_modules_that_directly_import(module)
        if importer.startswith("orderguard.providers")
    }
    assert {m for m in importers if not _is_lab(m)} == set()
    labs_importers = graph.find_modules_that_directly_import("orderguard.providers.labs")
    assert {m for m in labs_importers if m.startswith("orderguard.providers")} == set()
    assert graph.find_modules_that_directly_import("orderguard.providers.stripe.lab") == {
        "orderguard.providers.labs"
    }


def test_the_lab_runs_a_registered_providers_sandbox_and_the_demo_pays_with_its_cards() -> None:
    chosen = registry.plugin(labs.lab().provider)
    kit = registry.test_kit()
    assert chosen.test_kit is kit
    assert {kit.succeeds, kit.declined, kit.needs_authentication} <= set(
        chosen.profile.test_methods
    )
    assert kit.minor_units(1230, "kwd") == 1230  # Stripe writes KWD in thousandths too
    assert kit.minor_units(15000, "ISK") == 150  # ... and ISK in hundredths
    assert kit.amount_step("KWD") == 10


def test_the_registered_providers_bring_their_settlement_report_formats() -> None:
    from orderguard.cli.reconcile import SETTLEMENT_FORMATS
    from orderguard.reconcile import formats

    assert [f.name for f in registry.settlement_formats()] == ["stripe", "stripe"]
    assert formats.names(SETTLEMENT_FORMATS) == ("stripe", "adyen", "paypal", "alipay", "wechatpay")
    assert "stripe" not in formats.names(formats.OWN)
