"""Downloading a day's trade bill: ``alipay.data.dataservice.bill.downloadurl.query``, then
the ``csv.zip`` at the address it answers.

The method (https://opendocs.alipay.com/apis/api_15/alipay.data.dataservice.bill.downloadurl.query):
``bill_type`` ``trade`` (the trades made through the API), ``bill_date`` ``yyyy-MM-dd``;
the answer, signed like every other, holds ``bill_download_url``, valid 30 seconds. The
archive holds the day's ``业务明细`` file and its ``(汇总)`` summary, GBK CSV
(https://developer.aliyun.com/article/707638); the detail file is what the settlement reader
reads (``reconcile/formats.py``), so it alone is returned.

The address comes from the network: it is followed only on the gateway's own host (and, for
the production gateway, on Alipay's bill centre ``dwbillcenter.alipay.com``, over https
even when the address says http), never through a redirect, and the archive is read within
limits (:data:`MAX_BYTES`).
"""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import httpx

from orderguard.providers import bills
from orderguard.providers.alipay import errors
from orderguard.providers.alipay.gateway import Gateway
from orderguard.providers.base import ProviderError
from orderguard.providers.bills import (
    BillError,
    BillFile,
    BillNotReady,
    BillRefused,
    BillUnavailable,
    NoBill,
    check_download_url,
)

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
#: Where the production gateway's bills are served from.
BILL_HOSTS = frozenset({"dwbillcenter.alipay.com"})
#: The detail file's name ends so; the summary's ends ``_业务明细(汇总).csv``.
DETAIL_SUFFIX = "_业务明细.csv"
#: The most an archive may hold, unpacked (a day's bill is far smaller).
MAX_BYTES = bills.MAX_BYTES
#: The most files an archive may hold.
MAX_FILES = 16
#: The answers' ``sub_code`` -> what they mean here.
_REFUSALS: dict[str, type[BillError]] = {
    "isv.invalid-arguments": BillNotReady,
    "isp.bill_not_exist": NoBill,
}


async def download(
    gateway: Gateway, http: httpx.AsyncClient, day: date, *, live: bool
) -> list[BillFile]:
    """The detail file of ``day``'s trade bill; :class:`~..bills.BillError` otherwise."""
    biz = {"bill_type": "trade", "bill_date": day.isoformat()}
    try:
        body = await gateway.call(METHOD, biz, mutating=False)
    except errors.UnverifiedAnswer as exc:
        raise BillRefused(str(exc)) from exc
    except ProviderError as exc:
        raise BillUnavailable(f"alipay {METHOD}: {exc}") from exc
    if body.get("code") != errors.SUCCESS:
        sub_code = str(body.get("sub_code") or body.get("code"))
        problem = _REFUSALS.get(sub_code, BillError)
        raise problem(f"alipay {METHOD} {day}: {sub_code} {body.get('sub_msg') or ''}".strip())
    url = check_download_url(
        _over_https(str(body.get("bill_download_url") or ""), live=live),
        base_url=gateway.url,
        also=BILL_HOSTS if live else frozenset(),
    )
    content = await bills.download(
        http, http.build_request("GET", url), what="alipay bill download"
    )
    return detail_files(content)


def _over_https(url: str, *, live: bool) -> str:
    """An address on Alipay's bill centre, over https: the centre hands out plain http
    addresses, and the file has no hash, so only TLS vouches for it."""
    parts = urlsplit(url)
    if live and parts.scheme == "http" and (parts.hostname or "").lower() in BILL_HOSTS:
        return urlunsplit(parts._replace(scheme="https"))
    return url


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name: UTF-8 when the archive says so, else GBK (Alipay's), never a path."""
    name = info.filename
    if not info.flag_bits & 0x800:
        name = name.encode("cp437").decode("gbk", errors="replace")
    return PurePosixPath(name.replace("\\", "/")).name


def detail_files(content: bytes) -> list[BillFile]:
    """The ``业务明细`` files of a bill archive; :class:`BillRefused` for anything else."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zipped:
            infos = zipped.infolist()
            if len(infos) > MAX_FILES or sum(i.file_size for i in infos) > MAX_BYTES:
                raise BillRefused("the alipay bill archive is larger than a day's bill can be")
            found = [
                BillFile(member_name(info), zipped.read(info))
                for info in infos
                if member_name(info).endswith(DETAIL_SUFFIX)
            ]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise BillRefused(f"the alipay bill is not a readable csv.zip ({exc})") from exc
    if not found:
        raise BillRefused(f"the alipay bill archive holds no *{DETAIL_SUFFIX} file")
    return found
