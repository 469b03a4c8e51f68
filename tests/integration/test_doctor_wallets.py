"""``orderguard doctor`` on an Alipay app and a WeChat Pay merchant, against each wallet's
sandbox and a real orderguard app served on a loopback port (the notify URL's target):
keys, our signature and the wallet's, the clock against the gateway's ``Date``, and the
notify URL. Each failure names the variable to fix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.bootstrap import build_app, slot, wire
from orderguard.cli.doctor import run_doctor
from orderguard.config import Settings
from orderguard.observability.checks import Check, Status, worst
from orderguard.observability.doctor_accounts import clock_check, notify_check
from orderguard.providers import registry
from orderguard.providers.alipay.sandbox.config import APP_PUBLIC_FILE, load_keys, settings_for
from orderguard.providers.alipay.sandbox.config import SandboxConfig as AlipayConfig
from orderguard.providers.alipay.sandbox.server import run_sandbox as run_alipay
from orderguard.providers.plugin import Account, Checkup, ProviderPlugin
from orderguard.providers.serving import serve_in_thread
from orderguard.providers.wechatpay.sandbox.identity import load_identity
from orderguard.providers.wechatpay.sandbox.server import run_sandbox as run_wechatpay
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig as WechatConfig
from orderguard.services.providers import Providers
from orderguard.storage.memory import InMemoryStorage

Variables = dict[str, str]


@dataclass
class Lab:
    """One wallet's sandbox, orderguard serving its webhook, and the settings between."""

    name: str
    sandbox: str
    orderguard: str
    variables: Variables
    data_dir: Path
    #: The checkup of the account as the variables describe it (its keys read once).
    checkup: Checkup = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings(self.data_dir)
        plugin = registry.plugin(self.name)
        [account] = [a for a in plugin.accounts(settings) if a.primary]
        assert plugin.checkup is not None
        self.checkup = plugin.checkup(account)

    def var(self, suffix: str) -> str:
        return f"ORDERGUARD_{self.name.upper()}_{suffix}"

    def settings(self, tmp_path: Path, **changed: str | None) -> Settings:
        """The lab's settings with ``changed`` variables (``None``: unset)."""
        values = {**self.variables, **changed}
        found = {k.removeprefix("ORDERGUARD_").lower(): v for k, v in values.items() if v}
        env = found.pop("env", "development")
        return Settings(env=env, database_url=f"sqlite:///{tmp_path / 'none.db'}", **found)

    def pem_file(self, tmp_path: Path, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
        """``key`` written to a PEM file; its path."""
        if isinstance(key, rsa.RSAPrivateKey):
            text = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            text = key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        path = tmp_path / f"key-{id(key)}.pem"
        path.write_bytes(text)
        return str(path)


def _served_orderguard(name: str, variables: Variables, tmp_path: Path) -> Iterator[str]:
    """orderguard's app with the wallet's account (its webhook route), served on a port."""
    settings = Lab(name, "", "", variables, tmp_path).settings(tmp_path)
    plugin = registry.plugin(name)
    [account] = [a for a in plugin.accounts(settings) if a.primary]
    providers = Providers([slot(settings, plugin.build(account, 5.0), plugin.profile)])
    app = build_app(container=wire(settings, InMemoryStorage(), providers))
    with serve_in_thread(app, f"orderguard-{name}") as url:
        yield url


@pytest.fixture(scope="module", params=["alipay", "wechatpay"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name: str = request.param
    data_dir = tmp_path_factory.mktemp(name)
    if name == "alipay":
        config = AlipayConfig(data_dir=str(data_dir))
        with run_alipay(config) as sandbox:
            variables = settings_for(config, load_keys(config), sandbox)
            for url in _served_orderguard(name, variables, data_dir):
                variables["ORDERGUARD_ALIPAY_NOTIFY_URL"] = f"{url}/v1/webhooks/alipay"
                yield Lab(name, sandbox, url, variables, data_dir)
    else:
        with run_wechatpay(WechatConfig(data_dir)) as sandbox:
            variables = load_identity(data_dir).config(sandbox, "")
            for url in _served_orderguard(name, variables, data_dir):
                variables["ORDERGUARD_WECHATPAY_NOTIFY_URL"] = f"{url}/v1/webhooks/wechatpay"
                yield Lab(name, sandbox, url, variables, data_dir)


async def doctor(
    lab: Lab, tmp_path: Path, *, clock: Callable[[], datetime] | None = None, **changed: str | None
) -> dict[str, Check]:
    """The doctor's checks of the lab's account, by what they check."""
    checks = await run_doctor(lab.settings(tmp_path, **changed), clock=clock)
    prefix = f"{lab.name} "
    return {c.name.removeprefix(prefix): c for c in checks if c.name.startswith(prefix)}


def private_key_variable(lab: Lab) -> str:
    return lab.var("APP_PRIVATE_KEY" if lab.name == "alipay" else "PRIVATE_KEY_FILE")


def public_key_variable(lab: Lab) -> str:
    return lab.var("PUBLIC_KEY" if lab.name == "alipay" else "PUBLIC_KEY_FILE")


def fails_naming(check: Check, variable: str) -> None:
    assert check.status is Status.FAIL, check
    assert variable in check.detail + check.fix, check


async def test_an_account_set_up_right_passes_every_check(lab: Lab, tmp_path: Path) -> None:
    found = await doctor(lab, tmp_path)
    assert {name: c.status for name, c in found.items()} == {
        "keys": Status.PASS,
        "credentials": Status.PASS,
        "clock": Status.PASS,
        "notify url": Status.PASS,
    }, found
    assert worst(list(found.values())) == 0
    assert lab.orderguard in found["notify url"].detail


async def test_a_private_key_that_does_not_read_fails_naming_its_variable(
    lab: Lab, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    found = await doctor(lab, tmp_path, **{private_key_variable(lab): str(garbage)})
    fails_naming(found["keys"], private_key_variable(lab))
    assert found["credentials"].status is Status.SKIP
    assert worst(list(found.values())) == 2


async def test_the_merchants_own_public_key_in_place_of_the_wallets_fails(
    lab: Lab, tmp_path: Path
) -> None:
    if lab.name == "alipay":
        own = str(lab.data_dir / APP_PUBLIC_FILE)
    else:
        merchant = serialization.load_pem_private_key(
            (lab.data_dir / "merchant_key.pem").read_bytes(), password=None
        )
        assert isinstance(merchant, rsa.RSAPrivateKey)
        own = lab.pem_file(tmp_path, merchant.public_key())
    found = await doctor(lab, tmp_path, **{public_key_variable(lab): own})
    fails_naming(found["keys"], public_key_variable(lab))
    assert "own" in found["keys"].detail


async def test_a_private_key_the_wallet_does_not_know_is_refused_by_it(
    lab: Lab, tmp_path: Path
) -> None:
    stranger = lab.pem_file(
        tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    found = await doctor(lab, tmp_path, **{private_key_variable(lab): stranger})
    assert found["keys"].status is Status.PASS  # it reads: only the wallet can tell
    fails_naming(found["credentials"], private_key_variable(lab))


# Alipay only: WeChat Pay's answer to a query for no trade is an unsigned 404, so there is
# no answer whose signature the doctor could check with the platform key.
@pytest.mark.parametrize("lab", ["alipay"], indirect=True)
async def test_an_alipay_answer_that_does_not_verify_names_the_alipay_public_key(
    lab: Lab, tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    found = await doctor(lab, tmp_path, **{public_key_variable(lab): lab.pem_file(tmp_path, other)})
    assert found["keys"].status is Status.PASS
    fails_naming(found["credentials"], "ORDERGUARD_ALIPAY_PUBLIC_KEY")


def account_of(lab: Lab, settings: Settings) -> tuple[ProviderPlugin, Account]:
    plugin = registry.plugin(lab.name)
    [account] = [a for a in plugin.accounts(settings) if a.primary]
    return plugin, account


@pytest.mark.parametrize(
    ("off_by", "status"),
    [
        (timedelta(0), Status.PASS),
        (timedelta(minutes=2), Status.WARN),
        (timedelta(minutes=-10), Status.FAIL),
    ],
)
async def test_a_clock_off_the_gateways_warns_then_fails(
    lab: Lab, tmp_path: Path, off_by: timedelta, status: Status
) -> None:
    _, account = account_of(lab, lab.settings(tmp_path))
    async with httpx.AsyncClient() as http:
        check = await clock_check(account, http, lambda: datetime.now(UTC) + off_by)
    assert check.status is status, check
    seconds = int(check.detail.split("s ", 1)[0])
    assert abs(seconds - abs(off_by.total_seconds())) <= 3
    if status is not Status.PASS:
        assert "NTP" in check.fix


@pytest.mark.parametrize(
    ("notify_url", "env", "status"),
    [
        ("/v1/webhooks/{name}", "development", Status.FAIL),  # not absolute
        ("{orderguard}/v1/webhooks/stripe", "development", Status.FAIL),  # not this account's
        ("{orderguard}/v1/webhooks/{name}", "production", Status.FAIL),  # http in production
        ("{sandbox}/v1/webhooks/{name}", "development", Status.FAIL),  # another server answers
        ("http://127.0.0.1:9/v1/webhooks/{name}", "development", Status.WARN),  # nothing there
        ("http://127.0.0.1:9/v1/webhooks/{name}", "production", Status.FAIL),
        (None, "development", Status.WARN),
        (None, "production", Status.FAIL),
        ("{orderguard}/v1/webhooks/{name}", "development", Status.PASS),
    ],
    ids=[
        "relative",
        "other-path",
        "http-in-production",
        "other-server",
        "closed",
        "closed-prod",
        "unset",
        "unset-prod",
        "orderguard",
    ],
)
async def test_a_notify_url_that_cannot_reach_orderguard_names_its_variable(
    lab: Lab, tmp_path: Path, notify_url: str | None, env: str, status: Status
) -> None:
    url = (
        notify_url.format(name=lab.name, orderguard=lab.orderguard, sandbox=lab.sandbox)
        if notify_url
        else None
    )
    settings = lab.settings(tmp_path, ORDERGUARD_ENV=env, **{lab.var("NOTIFY_URL"): url})
    _, account = account_of(lab, settings)
    checkup = replace(lab.checkup, notify_url=url)
    async with httpx.AsyncClient() as http:
        check = await notify_check(account, checkup, settings, http)
    assert check.status is status, check
    if status is not Status.PASS:
        assert lab.var("NOTIFY_URL") in check.detail + check.fix, check
