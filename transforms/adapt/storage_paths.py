"""Storage path redirection: every volume and Director state path moved under a storage root of the inventory.

Pure functions. A volume of class ssd goes to an ssd pool when one has room, else to a faster class
(nvme); a volume never goes to a slower class than it had (hdd < ssd < nvme). Basic mode fills pools
in inventory order (first fit); advanced mode spreads volumes over the pools of a class (most free
room first). A pool's capacity_gib is never exceeded. Paths are built from the pool's root and the
component's names only:

    {root}/volumes/{app}/{volume}              a volume's data
    {root}/directors/{director}/{name}         a Director's state, images and vm_disks

and every new path is checked to lie strictly inside its root after POSIX normalisation, so a name
such as `..` can never lead outside it (it is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from omni_recovery.adapt.inventory import Inventory, StoragePool
from omni_recovery.urls import is_under
from transforms.adapt.vocabulary import Adaptation, AdaptationError
from transforms.documents import Environment

CLASS_RANK = {"hdd": 0, "ssd": 1, "nvme": 2}
DIRECTOR_PATH_CLASS = {"state": "ssd", "vm_disks": "ssd", "images": "hdd"}

if TYPE_CHECKING:
    import polars as pl


def path_schema() -> dict[str, pl.DataType]:
    """The columns of `StoragePlan.table` (polars imported here: the target layout uses `safe_join`,
    which needs none)."""
    import polars as pl

    text = ("subject", "kind", "old_path", "storage_class", "pool", "pool_class", "new_path")
    return {**dict.fromkeys(text, pl.String()), "size_gib": pl.Float64()}


@dataclass(frozen=True)
class PathMapping:
    subject: str  # volume:{app}/{vol} or director:{id}/{name}
    kind: str  # volume | director-path
    old_path: str
    storage_class: str  # the class it needs
    pool: str
    pool_class: str
    new_path: str
    size_gib: float


@dataclass(frozen=True)
class StoragePlan:
    paths: tuple[PathMapping, ...]
    table: pl.DataFrame  # path_schema()
    usage: tuple[tuple[str, float, int], ...]  # (pool, used GiB, capacity GiB)
    adaptations: tuple[Adaptation, ...]


def safe_join(root: str, *segments: str) -> str:
    """`root`/seg/... refusing any segment that is empty, `.`/`..`, or holds a separator or NUL; the result
    is checked to lie inside `root`."""
    for seg in segments:
        if seg in ("", ".", "..") or "/" in seg or "\\" in seg or "\x00" in seg:
            raise AdaptationError(f"name {seg!r} cannot be used in a storage path (it would leave {root})")
    path = root.rstrip("/") + "/" + "/".join(segments)
    if not is_under(root, path):
        raise AdaptationError(f"{path} would lie outside its storage root {root}")
    return path


@dataclass(frozen=True)
class _Need:
    subject: str
    kind: str
    old_path: str
    storage_class: str
    size_gib: float
    segments: tuple[str, ...]
    strict: bool = True  # volumes never go to a slower class; Director paths may when nothing else exists


def _needs(env: Environment) -> list[_Need]:
    needs = []
    for director in env.directors:
        for name, old in director.storage_paths:
            klass = DIRECTOR_PATH_CLASS.get(name, "ssd")
            seg = name.replace("_", "-")
            needs.append(
                _Need(
                    f"director:{director.director_id}/{name}",
                    "director-path",
                    old,
                    klass,
                    0.0,
                    ("directors", director.director_id, seg),
                    strict=False,
                )
            )
    for volume in env.volumes:
        if volume.storage_class not in CLASS_RANK:
            raise AdaptationError(
                f"{volume.component_id}: unknown storage class {volume.storage_class!r} "
                f"(known: {', '.join(sorted(CLASS_RANK))})"
            )
        needs.append(
            _Need(
                volume.component_id,
                "volume",
                volume.source_path,
                volume.storage_class,
                volume.size_gib,
                ("volumes", volume.app, volume.name),
            )
        )
    return needs


def redirect_storage(env: Environment, inventory: Inventory, mode: str = "basic") -> StoragePlan:
    """Place every volume and Director path in a pool of a matching class within capacity; raise
    AdaptationError saying which class lacks how many GiB, or which name cannot form a safe path."""
    pools = list(inventory.storage)
    used = {p.name: 0.0 for p in pools}
    needs = _needs(env)
    _check_totals(needs, pools)
    order = sorted(needs, key=lambda n: (-CLASS_RANK[n.storage_class], -n.size_gib, n.subject))
    placed: dict[str, PathMapping] = {}
    adaptations = []
    for need in order:
        pool = _choose(need, pools, used, mode)
        if pool is None:
            raise AdaptationError(_no_room(need, pools, used))
        used[pool.name] += need.size_gib
        new_path = safe_join(pool.root, *need.segments)
        placed[need.subject] = PathMapping(
            need.subject,
            need.kind,
            need.old_path,
            need.storage_class,
            pool.name,
            pool.storage_class,
            new_path,
            need.size_gib,
        )
        adaptations.append(
            Adaptation(
                "storage-path",
                need.subject,
                need.old_path,
                new_path,
                f"storage pool {pool.name} ({pool.storage_class})",
            )
        )
        if pool.storage_class != need.storage_class:
            adaptations.append(
                Adaptation(
                    "storage-class",
                    need.subject,
                    need.storage_class,
                    pool.storage_class,
                    f"no {need.storage_class} pool with room; "
                    + (
                        "a faster class is used"
                        if pool_faster(pool, need)
                        else "slower, as no pool of its class or faster exists"
                    ),
                )
            )
    import polars as pl

    paths = tuple(placed[n.subject] for n in needs)
    table = pl.DataFrame(
        [
            {
                "subject": p.subject,
                "kind": p.kind,
                "old_path": p.old_path,
                "storage_class": p.storage_class,
                "pool": p.pool,
                "pool_class": p.pool_class,
                "new_path": p.new_path,
                "size_gib": p.size_gib,
            }
            for p in paths
        ],
        schema=path_schema(),
    )
    usage = tuple((p.name, used[p.name], p.capacity_gib) for p in pools)
    return StoragePlan(paths, table, usage, tuple(sorted(adaptations, key=lambda a: (a.subject, a.kind))))


def _choose(need: _Need, pools: list[StoragePool], used: dict[str, float], mode: str) -> StoragePool | None:
    rank = CLASS_RANK[need.storage_class]
    fitting = [
        p
        for p in pools
        if CLASS_RANK.get(p.storage_class, -1) >= rank
        and used[p.name] + need.size_gib <= p.capacity_gib + 1e-9
    ]
    if not fitting and not need.strict:  # a Director path may use a slower class rather than none
        fitting = [p for p in pools if used[p.name] + need.size_gib <= p.capacity_gib + 1e-9]
        return max(
            fitting, key=lambda p: (CLASS_RANK.get(p.storage_class, -1), -pools.index(p)), default=None
        )
    if not fitting:
        return None
    if mode == "advanced":
        return min(
            fitting, key=lambda p: (CLASS_RANK[p.storage_class], -(p.capacity_gib - used[p.name]), p.name)
        )
    return min(fitting, key=lambda p: (CLASS_RANK[p.storage_class], pools.index(p)))


def pool_faster(pool: StoragePool, need: _Need) -> bool:
    return CLASS_RANK.get(pool.storage_class, -1) > CLASS_RANK[need.storage_class]


def _check_totals(needs: list[_Need], pools: list[StoragePool]) -> None:
    needs = [n for n in needs if n.strict]
    for klass, rank in sorted(CLASS_RANK.items(), key=lambda kv: -kv[1]):
        need = sum(n.size_gib for n in needs if CLASS_RANK[n.storage_class] >= rank)
        if not any(CLASS_RANK[n.storage_class] >= rank for n in needs):
            continue
        classes = [c for c, r in CLASS_RANK.items() if r >= rank]
        have = sum(p.capacity_gib for p in pools if p.storage_class in classes)
        if need > have or not any(p.storage_class in classes for p in pools):
            raise AdaptationError(
                f"volumes of class {klass} or faster need {need:g} GiB; the inventory's "
                f"{'/'.join(sorted(classes))} storage has {have} GiB (short by {max(need - have, 0):g} GiB)"
                + ("" if have else f"; add a storage pool of class {klass} or faster")
            )


def _no_room(need: _Need, pools: list[StoragePool], used: dict[str, float]) -> str:
    rank = CLASS_RANK[need.storage_class]
    options = [p for p in pools if CLASS_RANK.get(p.storage_class, -1) >= rank]
    best = max(options, key=lambda p: p.capacity_gib - used[p.name])
    room = best.capacity_gib - used[best.name]
    return (
        f"{need.subject} ({need.size_gib:g} GiB, class {need.storage_class}) fits in no storage pool: "
        f"the most room left is {room:g} GiB in {best.name} (short by {need.size_gib - room:g} GiB)"
    )
