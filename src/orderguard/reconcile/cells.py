"""Cells of the CSV files orderguard writes, safe to open in a spreadsheet.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula
(``=HYPERLINK(...)``, ``-2+3+cmd|' /C calc'!A0``), and one starting with a tab or carriage
return may be read as one after trimming. Text from a report, a file name or an error
message is written with a single quote before it (OWASP's rule): the spreadsheet shows the
text, and ``'`` is easy for a script to strip. A cell that is a plain decimal number
(``-12.50``, ``+3``) is no formula and is kept as it is, so negative amounts stay numbers;
the amount columns themselves are integers orderguard writes, never text from a report.
"""

from __future__ import annotations

import re

#: What a formula-like cell starts with.
_FORMULA_START = re.compile(r"[=+\-@\t\r]")
#: A signed decimal number and nothing else: read as a number, never run.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def neutralise(cell: object) -> object:
    """``cell`` with ``'`` before it when it is text a spreadsheet would run as a formula."""
    if isinstance(cell, str) and _FORMULA_START.match(cell) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
