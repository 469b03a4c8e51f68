"""Recognising a report: its format by its header, its encoding, delimiter and header line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.providers.settlement import SettlementFormat, first
from orderguard.reconcile import formats
from orderguard.reconcile.mapping import MappingError, load_mapping
from orderguard.reconcile.sources import SourceError, open_source, prepare, sniff_encoding

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"


@pytest.mark.parametrize(
    ("file", "layout", "encoding", "header_line", "direct"),
    [
        ("stripe_itemized.csv", "stripe", "utf-8", 1, True),
        ("stripe_balance.csv", "stripe", "utf-8", 1, True),
        ("adyen_settlement.csv", "adyen", "utf-8", 1, True),
        ("paypal_stl.csv", "paypal", "utf-8", 4, False),
        ("alipay_trade.csv", "alipay", "gb18030", 5, False),
        ("wechatpay_trade.csv", "wechatpay", "utf-8", 1, False),
    ],
)
def test_auto_recognises_each_report_by_its_header(
    file: str, layout: str, encoding: str, header_line: int, direct: bool
) -> None:
    source = open_source(FIXTURES / file, formats=FORMATS)
    assert (source.layout.name, source.encoding, source.header_line, source.direct) == (
        layout,
        encoding,
        header_line,
        direct,
    )


def test_a_mapped_csv_with_a_bom_and_semicolons_is_recognised() -> None:
    source = open_source(
        FIXTURES / "generic.csv",
        mapping=load_mapping(FIXTURES / "generic_mapping.toml"),
        formats=FORMATS,
    )
    assert (source.layout.name, source.layout.provider) == ("csv", "acme")
    assert (source.encoding, source.delimiter, source.header[0]) == ("utf-8-sig", ";", "Txn")


def test_a_named_format_refuses_another_providers_report() -> None:
    with pytest.raises(SourceError, match="line 1 is not the header of a paypal report"):
        open_source(FIXTURES / "adyen_settlement.csv", wanted="paypal", formats=FORMATS)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="the file is empty"):
        open_source(empty, formats=FORMATS)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("交易,金额\n".encode("gbk"), "gb18030"),
        ("交易,金额\n".encode(), "utf-8"),
        (b"\xef\xbb\xbfa,b\n", "utf-8-sig"),
        (b"a,b\n", "utf-8"),
    ],
)
def test_the_encoding_is_sniffed(data: bytes, encoding: str) -> None:
    assert sniff_encoding(data) == encoding


def test_a_wechat_bill_saved_as_gbk_is_read(tmp_path: Path) -> None:
    gbk = tmp_path / "wechat-gbk.csv"
    gbk.write_bytes((FIXTURES / "wechatpay_trade.csv").read_text().encode("gbk"))
    source = open_source(gbk, formats=FORMATS)
    assert (source.layout.name, source.encoding) == ("wechatpay", "gb18030")
    out = tmp_path / "prepared.csv"
    assert prepare(source, out) == []
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 9  # the header and nine lines; the summary rows are dropped
    assert lines[1].startswith("2,2026-11-02 10:00:00,wx2421b1c4370ec43b,")


def test_paypal_keeps_only_its_sb_rows_with_their_line_numbers(tmp_path: Path) -> None:
    source = open_source(FIXTURES / "paypal_stl.csv", formats=FORMATS)
    out = tmp_path / "prepared.csv"
    assert prepare(source, out) == []
    numbers = [line.split(",", 1)[0] for line in out.read_text().splitlines()[1:]]
    assert numbers == [str(n) for n in range(5, 16)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[columns]\namount = 'A'\n", "needs reference"),
        ("[columns]\nreference = 'R'\namount = 'A'\n", "name a currency column"),
        (
            "[columns]\nreference = 'R'\namount = 'A'\ncurrency = 'C'\n[types]\nsale = ['x']\n",
            "unknown kinds in \\[types\\]: sale",
        ),
        ("not toml = = =", "Expected"),
    ],
)
def test_a_bad_mapping_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_reconcile_alone_knows_only_its_own_formats() -> None:
    """The registered providers' formats come from the composition's table."""
    assert "stripe" not in formats.names(formats.OWN)
    with pytest.raises(SourceError, match="line 1 is not the header of any known report"):
        open_source(FIXTURES / "stripe_itemized.csv")


def test_a_declared_format_maps_only_to_kinds_reconcile_knows() -> None:
    declared = SettlementFormat(
        name="acme",
        provider="acme",
        signature=frozenset({"id", "type"}),
        ref=first("id"),
        order_ref=first("order"),
        kind=first("type"),
        kinds={"gift": ("present",)},
        credit=first("amount"),
        fees=(),
        currency=first("currency"),
        at=first("at"),
    )
    with pytest.raises(ValueError, match="format acme: unknown kinds \\['gift'\\]"):
        formats.table([declared])
