"""CSV cells that a spreadsheet will not run as formulas (CSV injection, OWASP).

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some versions, a tab or a carriage return before one) as a formula: a department
opening a download could run ``=HYPERLINK(…)`` written by whoever filled a field. Every CSV the
API writes (the downloads of :mod:`sdi.api.downloads`, the items' CSV) passes its text cells
through :func:`neutralise`, which puts an apostrophe in front of such a value — the
spreadsheets' own way of saying "this is text" — and leaves everything else as it is. Numbers
are written by the CSV writer, not passed here, so ``-3.5`` stays a number.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """The cell text, with an apostrophe in front if a spreadsheet would read a formula.

    >>> neutralise("=HYPERLINK(\\"http://x\\")"), neutralise("@SUM(A1)"), neutralise("Hạ Long")
    ('\\'=HYPERLINK("http://x")', "'@SUM(A1)", 'Hạ Long')
    >>> neutralise("-1+2"), neutralise("")
    ("'-1+2", '')
    """
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: Any) -> Any:
    """A value ready for :mod:`csv` writers: text neutralised, other values unchanged.

    >>> cell("+84 912"), cell(-3.5), cell(None)
    ("'+84 912", -3.5, None)
    """
    return neutralise(value) if isinstance(value, str) else value
