"""The documents of a backup set by environment path, knowing which ISO holds each and where in it.

A problem found in a document is first said by its environment path (`directors/dir-1/config.yaml:
what is wrong`), the only name planning and the layout know; `SetDocuments.located` says it again
naming the ISO and the path inside it (`set_director-state_001.iso: data/directors/dir-1/config.yaml:
what is wrong`), so an operator knows which image to look at.
"""

from __future__ import annotations

from collections.abc import Mapping


class SetDocuments(dict[str, bytes]):
    """Environment path → bytes, with `held_by`: environment path → (ISO file name, path in the ISO)."""

    def __init__(self, documents: Mapping[str, bytes], held_by: Mapping[str, tuple[str, str]]) -> None:
        super().__init__(documents)
        self.held_by = dict(held_by)

    def located(self, problem: str) -> tuple[str | None, str | None, str]:
        """(ISO, path in it, what) of a problem `{environment path}: what`; (None, None, problem) when
        the problem names no document of the set."""
        rel, _, what = problem.partition(": ")
        if rel not in self.held_by:
            return None, None, problem
        iso, path = self.held_by[rel]
        return iso, path, what

    def naming_iso(self, problem: str) -> str:
        iso, path, what = self.located(problem)
        return problem if iso is None else f"{iso}: {path}: {what}"
