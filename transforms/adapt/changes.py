"""What an adaptation of documents reports: each changed value, where, and why; and its one error.

A `DocumentChange` names the document (environment path), the place inside it as a JSON pointer
(RFC 6901: `/subnets/management/gateway`, `/vms/0/networks/1/ip`), the old and the new text, and
the adaptations of the plan that explain it. `LayoutError` lists every problem found at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omni_recovery.errors import RecoveryError
from transforms.adapt.vocabulary import Adaptation
from transforms.documents.sources import pointer_token

__all__ = ["DocumentChange", "LayoutError", "pointer_token"]


class LayoutError(RecoveryError):
    """The plan does not fit the environment or the inventory (or a document is missing or malformed);
    `problems` lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = sorted(set(problems))
        if len(self.problems) == 1:  # one problem, one line
            super().__init__(f"the target layout cannot be made: {self.problems[0]}")
        else:
            super().__init__("the target layout cannot be made:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class DocumentChange:
    """One value of one document changed by the adaptation."""

    document: str
    pointer: str
    old: str
    new: str
    adaptations: tuple[Adaptation, ...]

    @property
    def reason(self) -> str:
        return "; ".join(f"{a.kind} {a.subject}: {a.reason}" for a in self.adaptations)
