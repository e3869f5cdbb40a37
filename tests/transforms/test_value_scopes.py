"""Which path rewrites apply to a document: its scope, found by its folders, however many scopes."""

from __future__ import annotations

from collections.abc import Iterator

from transforms.adapt.values import Rewrite, ValueAdapter, ValueMap
from transforms.adapt.vocabulary import Adaptation


class CountedScopes(dict[str, dict[str, Rewrite]]):
    """The plan's path rewrites by scope, counting the passes over every scope."""

    passes = 0

    def __iter__(self) -> Iterator[str]:
        CountedScopes.passes += 1
        return super().__iter__()


def rewrite(old: str, new: str) -> dict[str, Rewrite]:
    return {old: Rewrite(old, new, Adaptation("storage-path", old, old, new, "moved"))}


def adapter(volumes: int) -> ValueAdapter:
    scopes = CountedScopes(
        {f"volumes/app-{i}/data/": rewrite(f"/srv/app-{i}", f"/new/app-{i}") for i in range(volumes)}
    )
    scopes["directors/dir-1/"] = rewrite("/var/lib/dir", "/new/dir")
    scopes["volumes/app-3/"] = rewrite("/srv/app-3", "/elsewhere/app-3")  # later than volumes/app-3/data/
    scopes[""] = rewrite("/shared", "/new/shared")
    return ValueAdapter(ValueMap(subnets=(), addresses={}, paths=scopes, macs={}, hostnames={}))


def test_each_document_gets_the_first_scope_it_lies_in_and_the_shared_rewrites() -> None:
    values = adapter(5)
    cases: dict[str, tuple[str, str]] = {
        "volumes/app-3/data/volume.yaml": ("/srv/app-3/x", "/new/app-3/x"),  # the first of two scopes
        "volumes/app-3/other.yaml": ("/srv/app-3/x", "/elsewhere/app-3/x"),
        "directors/dir-1/config.yaml": ("/var/lib/dir and /shared", "/new/dir and /new/shared"),
        "directors/dir-10/config.yaml": ("/var/lib/dir", "/var/lib/dir"),  # not dir-1's
        "applications/app-1/app.yaml": ("/srv/app-1 /shared", "/srv/app-1 /new/shared"),
    }
    for rel, (old, new) in cases.items():
        assert values.text(old, rel)[0] == new, rel


def test_the_scopes_are_not_gone_through_for_each_value() -> None:
    values = adapter(2000)
    CountedScopes.passes = 0
    document = {"paths": [f"/srv/app-{i}/file" for i in range(200)]}
    new, _ = values.document("volumes/app-7/data/volume.yaml", document)
    assert new["paths"][7] == "/new/app-7/file" and new["paths"][8] == "/srv/app-8/file"
    assert CountedScopes.passes <= 1
