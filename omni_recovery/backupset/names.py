"""ISO 9660 and Joliet identifiers for the real (Rock Ridge) names a writer stores.

Readers take the Rock Ridge name first, so these identifiers matter only to tools that do not
read Rock Ridge. They are still made unique within each directory and kept within each
format's limits (d-characters for ISO 9660; for Joliet no * / : ; ? \\ and at most 64 bytes of
UTF-8, which is what pycdlib enforces, stricter than Joliet's 64 UCS-2 characters), so that every
tool sees a valid image.
"""

from __future__ import annotations

import hashlib
import re

_NOT_D_CHAR = re.compile(r"[^A-Z0-9_]")
_JOLIET_FORBIDDEN = re.compile(r"[*/:;?\\\x00-\x1f]")
_ISO_STEM_MAX = 24
_JOLIET_MAX = 64


def utf8_prefix(text: str, size: int) -> str:
    """The longest start of `text`, in whole characters, whose UTF-8 takes at most `size` bytes."""
    return text.encode("utf-8", "surrogateescape")[:size].decode("utf-8", "ignore")


def _digest(name: str, size: int) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:size].upper()


class DirectoryNames:
    """Hands out unique ISO 9660 and Joliet identifiers for the entries of one directory."""

    def __init__(self) -> None:
        self._iso: set[str] = set()
        self._joliet: set[str] = set()

    def iso9660(self, name: str, *, is_dir: bool) -> str:
        """An ISO 9660 identifier: `STEM.EXT;1` for files, `STEM` for directories."""
        stem, _, ext = name.rpartition(".") if "." in name[1:] and not is_dir else (name, "", "")
        stem = _NOT_D_CHAR.sub("_", stem.upper())[:_ISO_STEM_MAX] or "_"
        ext = _NOT_D_CHAR.sub("_", ext.upper())[:3]
        candidate = self._unique_iso(stem, ext, name)
        self._iso.add(candidate)
        return candidate if is_dir else f"{candidate};1"

    def joliet(self, name: str) -> str:
        """A Joliet identifier: the name itself where it is allowed, else a shortened unique form."""
        clean = _JOLIET_FORBIDDEN.sub("_", name)
        short = utf8_prefix(clean, _JOLIET_MAX - 9)
        candidate = clean if len(clean.encode()) <= _JOLIET_MAX else f"{short}~{_digest(name, 8)}"
        if candidate.lower() in self._joliet:
            candidate = f"{short}~{_digest(name + '#', 8)}"
        counter = 0
        while candidate.lower() in self._joliet:
            counter += 1
            candidate = f"{utf8_prefix(clean, _JOLIET_MAX - 12)}~{counter:03d}{_digest(name, 8)}"
        self._joliet.add(candidate.lower())
        return candidate

    def _unique_iso(self, stem: str, ext: str, name: str) -> str:
        def joined(s: str) -> str:
            return f"{s}.{ext}" if ext else s

        candidate = joined(stem)
        if candidate not in self._iso:
            return candidate
        hashed = f"{stem[: _ISO_STEM_MAX - 9]}_{_digest(name, 8)}"
        counter = 0
        candidate = joined(hashed)
        while candidate in self._iso:
            counter += 1
            candidate = joined(f"{stem[: _ISO_STEM_MAX - 9]}_{counter:08d}")
        return candidate
