"""The sandboxes' daily bills as Alipay and WeChat Pay serve theirs: a bill not ready yet,
an address that works 30 seconds, a download WeChat Pay only gives to a signed request, and
what the adapters make of each."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from orderguard.providers.alipay.adapter import AlipayProvider
from orderguard.providers.alipay.bills import METHOD
from orderguard.providers.bills import CHINA, BillNotReady
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.bills import apply_path
from tests.providers.alipay_support import (
    admin,
    alipay_request,
    key_pairs,
    provider,
    sandbox_url,
)
from tests.providers.wechatpay_kit import identity_dir, receiver, receiver_url, wechat_sandbox
from tests.providers.wechatpay_kit import provider as wechat_provider

__all__ = [
    "admin",
    "identity_dir",
    "key_pairs",
    "provider",
    "receiver",
    "receiver_url",
    "sandbox_url",
    "wechat_provider",
    "wechat_sandbox",
]

DAY = datetime.now(CHINA).date() - timedelta(days=2)


async def _clock_to(admin: httpx.AsyncClient, moment: datetime) -> float:
    """Move the sandbox's clock to ``moment``; how far it moved."""
    now = (await admin.post("/admin/clock", json={"advance_s": 0})).json()["now"]
    shift = (moment - datetime.fromisoformat(now)).total_seconds()
    (await admin.post("/admin/clock", json={"advance_s": shift})).raise_for_status()
    return shift


async def _paid_trade(provider: AlipayProvider, admin: httpx.AsyncClient) -> str:
    result = await provider.create_payment(alipay_request(amount=1234))
    assert result.redirect_url is not None
    (await admin.get(result.redirect_url)).raise_for_status()
    for step in ("login", "pay"):
        (await admin.post(f"/admin/trades/{result.provider_ref}/{step}")).raise_for_status()
    return result.provider_ref


async def test_an_alipay_bill_is_not_ready_before_ten_the_next_day(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    await _clock_to(admin, datetime.combine(DAY, time(12), CHINA))
    await _paid_trade(provider, admin)
    await _clock_to(admin, datetime.combine(DAY + timedelta(days=1), time(9, 30), CHINA))
    with pytest.raises(BillNotReady, match=r"isv\.invalid-arguments"):
        await provider.download_bill(DAY)
    await admin.post("/admin/clock", json={"advance_s": 3600})
    [bill] = await provider.download_bill(DAY)
    assert ",12.34," in bill.content.decode("gbk")


async def test_an_alipay_bill_address_works_thirty_seconds(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    shift = await _clock_to(admin, datetime.combine(DAY, time(12), CHINA))
    await _paid_trade(provider, admin)
    await admin.post("/admin/clock", json={"advance_s": -shift})
    biz = {"bill_type": "trade", "bill_date": DAY.isoformat()}
    body = await provider.gateway.call(METHOD, biz, mutating=False)
    url = str(body["bill_download_url"])
    assert "bizType=trade" in url and f"bizDates={DAY:%Y%m%d}" in url
    (await admin.post("/admin/clock", json={"advance_s": 31})).raise_for_status()
    async with httpx.AsyncClient() as browser:
        late = await browser.get(url)
    assert late.status_code == 403 and "下载超时" in late.content.decode("gbk")


async def test_wechatpay_gives_its_bill_only_to_a_signed_request(
    wechat_provider: WechatPayProvider, wechat_sandbox: str, identity_dir: Path
) -> None:
    async with httpx.AsyncClient(base_url=wechat_sandbox) as stranger:
        refused = await stranger.get(apply_path(DAY))
        assert refused.status_code == 401 and refused.json()["code"] == "SIGN_ERROR"
        answer = await wechat_provider._call("GET", apply_path(DAY), None, mutating=False)
        assert (answer.status, answer.code) == (400, "NO_STATEMENT_EXIST")
        download = await stranger.get("/v3/billdownload/file?token=guessed")
        assert download.status_code == 401
