"""The plan as polars tables for the recovery database and the report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import polars as pl

from transforms.plan.model import Plan, _plain


def plan_tables(plan: Plan) -> dict[str, pl.DataFrame]:
    """The plan as polars tables for the recovery database and the report: steps (depends_on joined by
    commas), placements, paths, addresses and adaptations, each with the plan's backup_set_id and sha256."""
    tag = {"backup_set_id": plan.backup_set_id, "plan_sha256": plan.sha256}

    def frame(rows: Iterable[Any], **convert: Any) -> pl.DataFrame:
        data = [{**tag, **{k: convert.get(k, _same)(v) for k, v in _plain(asdict(r)).items()}} for r in rows]
        return pl.DataFrame(data, infer_schema_length=None)

    return {
        "plan_steps": frame(plan.steps, depends_on=lambda v: ",".join(v)),
        "plan_placements": frame(plan.placements),
        "plan_paths": frame(plan.paths),
        "plan_addresses": frame(plan.addresses),
        "plan_adaptations": frame(plan.adaptations),
    }


def _same(value: Any) -> Any:
    return value
