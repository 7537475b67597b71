"""Text for terminals whose encoding is not UTF-8 (``PYTHONIOENCODING=ascii``, Latin-1 consoles).

Tables are drawn with box characters and the terminal heatmap with block characters; writing
them to an ASCII stream raises ``UnicodeEncodeError``. :func:`fit_encoding` maps them to ASCII
look-alikes (``+``, ``-``, ``|``, ``#``, ``...``) and replaces anything else the encoding cannot
hold with ``?``, so a table always prints.
"""

from __future__ import annotations

import codecs

_BOX = {
    **dict.fromkeys("─━═╌╍┄┅┈┉", "-"),
    **dict.fromkeys("│┃║╎╏┆┇┊┋", "|"),
    **dict.fromkeys("┌┍┎┏┐┑┒┓└┕┖┗┘┙┚┛├┝┞┟┠┡┢┣┤┥┦┧┨┩┪┫┬┭┮┯┰┱┲┳┴┵┶┷┸┹┺┻┼┽┾┿╀╁╂╃╄╅╆╇╈╉╊╋"
                    "╒╓╔╕╖╗╘╙╚╛╜╝╞╟╠╡╢╣╤╥╦╧╨╩╪╫╬╭╮╯╰", "+"),
    "█": "#", "▓": "#", "▒": "+", "░": ".", "▁": "_", "▂": "_", "▃": "_", "▄": "_", "▅": "=", "▆": "=", "▇": "#",
    "…": "...", "≥": ">=", "≤": "<=", "±": "+/-", "×": "x", "−": "-", "–": "-", "—": "-", "·": ".",
    "“": '"', "”": '"', "‘": "'", "’": "'",
}
_TABLE = str.maketrans(_BOX)


def can_encode(text: str, encoding: str | None) -> bool:
    if not encoding:
        return True
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def fit_encoding(text: str, encoding: str | None) -> str:
    """``text`` unchanged if ``encoding`` holds it, else with ASCII box/block look-alikes and ``?`` for the rest."""
    if can_encode(text, encoding):
        return text
    try:
        codecs.lookup(encoding or "ascii")
    except LookupError:
        encoding = "ascii"
    fitted = text.translate(_TABLE)
    return fitted.encode(encoding or "ascii", errors="replace").decode(encoding or "ascii")
