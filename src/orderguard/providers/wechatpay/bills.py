"""Downloading a day's trade bill: ``GET /v3/bill/tradebill``, then the file at the address
it answers, checked against the SHA-1 it answers.

The API (https://pay.weixin.qq.com/doc/v3/merchant/4012556654 "申请交易账单",
https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_9_1.shtml): ``bill_date``
``yyyy-MM-DD`` and ``bill_type`` ``ALL`` in the query, the answer (signed) ``hash_type``
``SHA1``, ``hash_value`` and ``download_url``. The download
(https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_3_9.shtml) is a signed ``GET`` of
that address whose answer carries no signature: the hash is what vouches for the file, so
a file whose SHA-1 differs is refused whole. The file is the bill as WeChat Pay writes it
(backticks, totals at the end), which the settlement reader reads (``reconcile/formats.py``).

The address comes from the network: it is followed only on the configured API host (and
port and scheme), never through a redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from orderguard.providers.bills import (
    BillError,
    BillNotReady,
    BillRefused,
    NoBill,
    check_download_url,
)

APPLY = "/v3/bill/tradebill"
#: The answers' ``code`` -> what they mean here.
_REFUSALS: dict[str, type[BillError]] = {
    "STATEMENT_CREATING": BillNotReady,
    "NO_STATEMENT_EXIST": NoBill,
}
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")


def apply_path(day: date) -> str:
    """The path and query asking for ``day``'s whole trade bill."""
    return f"{APPLY}?bill_date={day.isoformat()}&bill_type=ALL"


def file_name(day: date) -> str:
    """What the downloaded bill is called here."""
    return f"wechatpay_tradebill_{day:%Y%m%d}.csv"


def download_address(
    status: int, body: Mapping[str, Any], *, day: date, base_url: str
) -> tuple[str, str]:
    """``(download_url, sha1)`` of a verified answer; a :class:`BillError` saying why not."""
    if status != 200:
        code = str(body.get("code") or status)
        problem = _REFUSALS.get(code, BillError)
        raise problem(f"wechatpay tradebill {day}: {code} {body.get('message') or ''}".strip())
    if body.get("hash_type") != "SHA1" or not _SHA1.fullmatch(str(body.get("hash_value"))):
        raise BillRefused(f"wechatpay tradebill {day}: no SHA1 hash_value in the answer")
    url = check_download_url(str(body.get("download_url") or "").strip(), base_url=base_url)
    return url, str(body["hash_value"]).lower()


def check_file(content: bytes, sha1: str) -> bytes:
    """``content`` when its SHA-1 is ``sha1``; else :class:`BillRefused`."""
    found = hashlib.sha1(content, usedforsecurity=False).hexdigest()
    if not hmac.compare_digest(found, sha1):
        raise BillRefused(
            f"the wechatpay bill's SHA-1 is {found}, the answer said {sha1}: "
            "the file is not the bill, nothing of it is read"
        )
    return content
