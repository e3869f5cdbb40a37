"""The plan's edges and YAML at the seed's scale: with gate steps, beside the same plan without them.

Run: python bench/plan_edges.py [--nodes 5,50,200] [--apps-per-node 10] [--volumes-per-node 40]

For each size: a demo environment (as bench/scale.py makes it, in a temporary folder), its plan
onto a same-shaped inventory (plan-generate's own `generate_plan`), then for the plan as generated
and for the baseline, the same plan in the form written before gate steps (`without_gates`: each
step depending on every last step of the previous phase), the edges (depends_on entries), the
YAML's size and the seconds `plan_to_yaml` and `plan_from_yaml` (validation included) take. Then
the growth from one size to the next beside the growth of the steps.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scale import demo_options, same_shaped_inventory

from omni_recovery.envstate.demo import write_demo_environment
from omni_recovery.envstate.folder import environment_from_folder
from transforms.plan import Plan, generate_plan, plan_from_yaml, plan_to_yaml, without_gates

MiB = 1024**2


@dataclass(frozen=True)
class Form:
    steps: int
    edges: int
    yaml_bytes: int
    write_s: float
    read_s: float


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="5,50,200", help="comma-separated node counts")
    parser.add_argument("--apps-per-node", type=int, default=10)
    parser.add_argument("--volumes-per-node", type=int, default=40)
    args = parser.parse_args()
    sizes = []
    for nodes in (int(n) for n in args.nodes.split(",")):
        gated, before = measure(nodes, args.apps_per_node, args.volumes_per_node)
        sizes.append((nodes, gated, before))
        for name, form in (("gates", gated), ("before gates (baseline)", before)):
            print(
                f"{nodes} nodes, {name}: {form.steps:,} steps, {form.edges:,} edges, "
                f"{form.yaml_bytes / MiB:.1f} MiB of YAML, written in {form.write_s:.1f} s, "
                f"read back and validated in {form.read_s:.1f} s"
            )
    for (n1, gated1, before1), (n2, gated2, before2) in itertools.pairwise(sizes):
        edges, before_edges = gated2.edges / gated1.edges, before2.edges / before1.edges
        text, before_text = gated2.yaml_bytes / gated1.yaml_bytes, before2.yaml_bytes / before1.yaml_bytes
        print(
            f"{n1} -> {n2} nodes: steps x{gated2.steps / gated1.steps:.2f}; edges x{edges:.2f} (before "
            f"gates x{before_edges:.2f}); YAML x{text:.2f} (before gates x{before_text:.2f})"
        )


def measure(nodes: int, apps_per_node: int, volumes_per_node: int) -> tuple[Form, Form]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-plan-edges-{nodes}-"))
    try:
        write_demo_environment(folder / "env", demo_options(nodes, apps_per_node, volumes_per_node))
        env = environment_from_folder(folder / "env")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    inventory = same_shaped_inventory(env, "file:///srv/bench")
    plan = generate_plan(env, inventory, "basic", f"scale-{nodes}")
    return form(plan), form(without_gates(plan))


def form(plan: Plan) -> Form:
    start = time.perf_counter()
    text = plan_to_yaml(plan)
    written = time.perf_counter()
    plan_from_yaml(text)
    read = time.perf_counter()
    edges = sum(len(s.depends_on) for s in plan.steps)
    return Form(len(plan.steps), edges, len(text.encode()), written - start, read - written)


if __name__ == "__main__":
    main()
