"""The pure parts of daily bills: which download addresses are followed, what of an archive
is read, the SHA-1 check, and when the sandboxes say a bill is ready."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.providers import bills
from orderguard.providers.alipay.bills import detail_files
from orderguard.providers.alipay.sandbox import bills as alipay_sandbox
from orderguard.providers.alipay.sandbox.trades import BusinessError
from orderguard.providers.bills import (
    CHINA,
    BillRefused,
    BillUnavailable,
    NoBill,
    check_download_url,
)
from orderguard.providers.wechatpay import bills as wechat
from orderguard.providers.wechatpay.sandbox import bills as wechat_sandbox
from orderguard.providers.wechatpay.sandbox.trades import ApiError

BASE = "https://api.mch.weixin.qq.com/"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.mch.weixin.qq.com/v3/billdownload/file?token=x",
        "https://API.MCH.weixin.qq.com:443/v3/billdownload/file?token=x",
    ],
)
def test_an_address_on_the_api_host_is_followed(url: str) -> None:
    assert check_download_url(url, base_url=BASE) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v3/billdownload/file",
        "http://api.mch.weixin.qq.com/v3/billdownload/file",  # no downgrade to plain http
        "https://api.mch.weixin.qq.com:8443/v3/billdownload/file",
        "https://api.mch.weixin.qq.com.evil.example/x",
        "https://user:pw@api.mch.weixin.qq.com/x",
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "https://api.mch.weixin.qq.com/v3/bill\r\nHost: evil.example",
        "https://[::1/x",
        "",
    ],
)
def test_an_address_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(BillRefused, match="not followed"):
        check_download_url(url, base_url=BASE)


def test_a_named_bill_host_is_followed_over_https_only() -> None:
    also = frozenset({"dwbillcenter.alipay.com"})
    gateway = "https://openapi.alipay.com/gateway.do"
    url = "https://dwbillcenter.alipay.com/downloadBillFile.resource?token=t"
    assert check_download_url(url, base_url=gateway, also=also) == url
    with pytest.raises(BillRefused):
        check_download_url(url.replace("https", "http"), base_url=gateway, also=also)
    with pytest.raises(BillRefused):
        check_download_url(url, base_url=gateway)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, content in files.items():
            zipped.writestr(name, content)
    return buffer.getvalue()


def test_only_the_detail_file_of_an_archive_is_read_and_never_as_a_path() -> None:
    detail = "支付宝交易号\r\n".encode("gbk")
    archive = _zip(
        {
            "../../etc/2088_20261102_业务明细.csv": detail,
            "2088_20261102_业务明细(汇总).csv": b"summary",
        }
    )
    [found] = detail_files(archive)
    assert (found.name, found.content) == ("2088_20261102_业务明细.csv", detail)


@pytest.mark.parametrize(
    "content", [b"not a zip", _zip({"2088_20261102_业务明细(汇总).csv": b"summary only"})]
)
def test_an_archive_without_a_detail_file_is_refused(content: bytes) -> None:
    with pytest.raises(BillRefused):
        detail_files(content)


def test_a_file_whose_sha1_differs_is_refused() -> None:
    import hashlib

    content = b"`2026-11-02 10:00:00,`wx\r\n"
    good = hashlib.sha1(content, usedforsecurity=False).hexdigest()
    assert wechat.check_file(content, good) == content
    with pytest.raises(BillRefused, match="not the bill"):
        wechat.check_file(content + b" ", good)


@pytest.mark.parametrize(
    "body",
    [
        {"hash_type": "MD5", "hash_value": "0" * 40, "download_url": BASE + "f"},
        {"hash_type": "SHA1", "hash_value": "short", "download_url": BASE + "f"},
        {"hash_type": "SHA1", "hash_value": "0" * 40, "download_url": "https://x.example/f"},
    ],
)
def test_an_answer_without_a_usable_hash_or_address_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(BillRefused):
        wechat.download_address(200, body, day=date(2026, 11, 2), base_url=BASE)


def test_a_day_without_trades_is_no_bill() -> None:
    body = {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}
    with pytest.raises(NoBill, match="NO_STATEMENT_EXIST"):
        wechat.download_address(400, body, day=date(2026, 11, 2), base_url=BASE)


def _china(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), CHINA)


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (_china(date(2026, 11, 2), 23), "PARAM_ERROR"),  # the day is not over
        (_china(date(2026, 11, 1), 12), "PARAM_ERROR"),  # the day is to come
        (_china(date(2026, 11, 3), 9), "STATEMENT_CREATING"),  # made from 9:00, ready at 10:00
        (_china(date(2027, 3, 1), 12), "PARAM_ERROR"),  # three months kept
    ],
)
def test_the_wechat_sandbox_serves_a_bill_from_ten_the_next_day(now: datetime, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        wechat_sandbox.parse_day("2026-11-02", now)
    assert refused.value.code == code
    assert wechat_sandbox.parse_day("2026-11-02", _china(date(2026, 11, 3), 10)) == date(
        2026, 11, 2
    )


def test_the_alipay_sandbox_serves_a_bill_from_ten_the_next_day() -> None:
    day = date(2026, 11, 2)
    for now in (_china(day, 23), _china(date(2026, 11, 3), 9)):
        with pytest.raises(BusinessError, match=r"isv\.invalid-arguments"):
            alipay_sandbox.check_ready(day, now)
    alipay_sandbox.check_ready(day, _china(date(2026, 11, 3), 10))
    with pytest.raises(BusinessError, match=r"isv\.invalid-arguments"):
        alipay_sandbox.parse_day("2026-11")  # monthly bills are not served


def test_alipays_bill_centre_is_fetched_over_https_only_at_the_production_gateway() -> None:
    from orderguard.providers.alipay.bills import _over_https

    url = "http://dwbillcenter.alipay.com/downloadBillFile.resource?token=t"
    assert _over_https(url, live=True) == url.replace("http://", "https://")
    assert _over_https(url, live=False) == url
    other = "http://evil.example/downloadBillFile.resource"
    assert _over_https(other, live=True) == other


async def _fetch(answer: httpx.Response) -> bytes:
    transport = httpx.MockTransport(lambda request: answer)
    async with httpx.AsyncClient(transport=transport) as http:
        request = http.build_request("GET", "https://api.mch.weixin.qq.com/f")
        return await bills.download(http, request, what="the bill")


async def test_a_bill_is_read_whole_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bills, "MAX_BYTES", 1000)
    assert await _fetch(httpx.Response(200, content=b"x" * 1000)) == b"x" * 1000
    with pytest.raises(BillRefused, match="larger than 1000 bytes"):
        await _fetch(httpx.Response(200, content=b"x" * 1001))


async def test_a_redirect_is_not_followed() -> None:
    moved = httpx.Response(302, headers={"location": "http://169.254.169.254/"})
    with pytest.raises(BillUnavailable, match="HTTP 302"):
        await _fetch(moved)


def test_a_kept_bill_stays_in_its_directory_and_never_writes_through_a_link(
    tmp_path: Path,
) -> None:
    import click

    from orderguard.cli.bill_fetch import keep

    kept = tmp_path / "bills"
    kept.mkdir()
    assert keep("../../escape.csv", b"new", kept) == kept / "escape.csv"
    assert (kept / "escape.csv").read_bytes() == b"new"
    assert keep("escape.csv", b"newer", kept).read_bytes() == b"newer"  # a new download wins
    target = tmp_path / "precious.txt"
    target.write_bytes(b"keep me")
    (kept / "linked.csv").symlink_to(target)
    with pytest.raises(click.ClickException, match="not a plain file"):
        keep("linked.csv", b"overwrite", kept)
    assert target.read_bytes() == b"keep me"
    with pytest.raises(click.ClickException, match="refused bill file name"):
        keep("..", b"x", kept)


def test_the_reconcile_command_imports_no_http_client_until_it_fetches() -> None:
    import subprocess
    import sys

    probe = "import sys, orderguard.cli.reconcile; print('httpx' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"
