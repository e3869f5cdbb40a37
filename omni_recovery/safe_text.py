"""Text from a backup set's content made safe to print, log or store.

A path or a name in a manifest is whatever its writer put there: NUL and other control characters,
lone surrogates (from a JSON `\\udcff` escape), right-to-left marks that turn a line around on a
terminal, line separators. None of them may reach a terminal, a log, a report or a database text
column as they are: a terminal would be misled, UTF-8 cannot encode a lone surrogate, PostgreSQL
refuses a NUL. `safe_text()` writes every character that is not printable as its Python escape
(`\\x00`, `\\udcff`, `\\u202e`), so the result is one line, shows what is there, and encodes.
"""

from __future__ import annotations

__all__ = ["safe_text"]


def safe_text(value: str) -> str:
    """`value` with every non-printable character written as its Python escape (see the module doc)."""
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in value)
