"""A manifest's entries one at a time, for a reader that needs each entry once and never all together.

`iter_manifest_entries(blocks, iso=...)` reads manifest.json a block at a time and walks its
top-level object with the standard library's decoder: each top-level value is decoded whole except
`files`, whose entries are decoded and checked one by one (`parse_entry`, the rules `parse_manifest`
applies to each) and yielded. What is held is one block of text and one entry, whatever the number
of entries. The manifest's own fields are checked when its object ends, and invalid JSON anywhere
raises there too: a caller acts on what it gathered only once the iteration has ended. The checks
across entries (a path listed twice, an entry under a symlink) need every path at once and stay
`parse_manifest`'s, which validation runs.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from omni_recovery.backupset.manifest import (
    ManifestEntry,
    manifest_without_entries,
    not_json,
    parse_entry,
)

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def iter_manifest_entries(blocks: Iterable[bytes], *, iso: str) -> Iterator[ManifestEntry]:
    """Each entry of manifest.json (given as `blocks` of its bytes), checked, in order; BackupSetError
    naming the ISO when it is not a valid manifest."""
    scanner = _Scanner(iter(blocks), iso)
    top: dict[str, Any] = {}
    scanner.expect("{")
    while not scanner.take("}"):
        if top:
            scanner.expect(",")
        key = scanner.value()
        if not isinstance(key, str):
            raise scanner.invalid("a key is not a string")
        scanner.expect(":")
        if key == "files" and scanner.take("["):
            top[key] = []
            yield from (parse_entry(raw, iso) for raw in scanner.elements())
        else:
            top[key] = scanner.value()
    scanner.end()
    manifest_without_entries(top, iso)


class _Scanner:
    """A position in the manifest's text, read a block at a time; values decoded by json's decoder."""

    def __init__(self, blocks: Iterator[bytes], iso: str) -> None:
        self.blocks, self.iso = blocks, iso
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.text, self.at, self.ended = "", 0, False

    def invalid(self, what: str) -> Exception:
        return not_json(ValueError(f"{what}"), self.iso)

    def more(self) -> bool:
        """The next block added to the text not yet read; False at the end of the file."""
        if self.ended:
            return False
        block = next(self.blocks, None)
        try:
            decoded = self.utf8.decode(block or b"", final=block is None)
        except UnicodeDecodeError as exc:
            raise not_json(exc, self.iso) from exc
        self.ended = block is None
        self.text, self.at = self.text[self.at :] + decoded, 0
        return True

    def skip_space(self) -> None:
        while True:
            found = _SPACE.match(self.text, self.at)
            self.at = found.end() if found else self.at
            if self.at < len(self.text) or not self.more():
                return

    def take(self, char: str) -> bool:
        self.skip_space()
        if self.text.startswith(char, self.at):
            self.at += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.take(char):
            raise self.invalid(f"expected {char!r}")

    def value(self) -> Any:
        """The next value; one that fails or ends at the end of the text read so far (a number may go
        on) is decoded again once the next block is added."""
        self.skip_space()
        while True:
            try:
                found, end = _DECODER.raw_decode(self.text, self.at)
            except ValueError as exc:
                if self.more():
                    continue
                raise not_json(exc, self.iso) from exc
            if end < len(self.text) or not self.more():
                self.at = end
                return found

    def elements(self) -> Iterator[Any]:
        """The values of an array whose '[' was taken, one at a time, through its ']'."""
        first = True
        while not self.take("]"):
            if not first:
                self.expect(",")
            first = False
            yield self.value()

    def end(self) -> None:
        self.skip_space()
        if self.at < len(self.text):
            raise self.invalid("extra data after the manifest's object")
