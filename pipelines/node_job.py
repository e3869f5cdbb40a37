"""`restore_by_node`: a recovery plan's steps as a Dagster job whose ops run on restore workers.

The job is generated from the plan (`transforms/plan/node_groups.py`): one op per phase and queue,
holding that node's (or storage pool's) steps of the phase, tagged `dagster-celery/queue` with the
inventory's `worker_queue` for it, and after the ops holding the steps its steps depend on. With
dagster-celery's executor each op is a Celery task on its node's queue, and the worker rebuilds
this job from its code pointer (`reconstructable_restore_by_node`: this module, the plan and the
inventory as arguments), so it needs the plan and inventory at the same paths as the control node.

Each op's `recovery_worker` resource is run config (the run the control node opened, the run's
folder, and the run's ExecuteOptions whole, `worker_config`: a worker restores as execute-plan was
asked to, --numeric-owner and the SSH options included); inside the worker the first op of a run
builds the run's context from it and the worker's own environment (its workspace and database URL,
its passphrase), and the worker process keeps it for its next ops of that run: the control node's
live objects do not travel, and a refusal (a wrong passphrase) is the op's failure, naming why. The
op runs its steps with the runner as execute-plan does (parallel factor, retries, on_failure), joined to the
run (omni_recovery/execute/joined.py). Ops pass nothing to each other; their order is the plan's.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from dagster import (
    ConfigurableResource,
    DependencyDefinition,
    GraphDefinition,
    In,
    JobDefinition,
    MultiDependencyDefinition,
    Nothing,
    OpDefinition,
    OpExecutionContext,
    Out,
    fs_io_manager,
    op,
)
from dagster._core.definitions.reconstruct import ReconstructableJob, build_reconstructable_job
from dagster_celery import celery_executor
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

from omni_recovery.adapt.inventory import load_inventory
from omni_recovery.db.server import database_url
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.io_priority import set_io_priority
from omni_recovery.execute.joined import JoinedRunContext, join, steps_named
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.runner import run_steps
from omni_recovery.execute.tracking import FAILED, this_process
from omni_recovery.report.build import write_run_report
from omni_recovery.settings import code_location_passphrase, load_settings
from transforms.plan import plan_from_yaml
from transforms.plan.node_groups import StepGroup, step_groups, step_queues

JOB_NAME = "restore_by_node"


class WorkerRecovery(ConfigurableResource):
    """The run a worker joins: the run, its folder, and the run's options (`worker_config`)."""

    run_id: str
    run_folder: str
    options: str  # the run's ExecuteOptions as JSON: every field

    def execute_options(self) -> ExecuteOptions:
        """The run's ExecuteOptions, as the control node had them."""
        hints = get_type_hints(ExecuteOptions)
        given = json.loads(self.options)
        return ExecuteOptions(**{name: _typed(hints[name], value) for name, value in given.items()})

    def run_group(self, step_ids: tuple[str, ...]) -> dict[str, str]:
        """Join the run and run these steps of the plan; step id → status. A refusal (a wrong
        passphrase, a plan that does not match) or a step whose on_failure is stop raises."""
        run = self._joined()
        try:
            outcomes = run_steps(run, steps_named(run, step_ids))
        except BaseException:
            _forget_joined()  # a database gone, a stop: the next op builds the context anew
            raise
        return {step_id: outcome.status for step_id, outcome in outcomes.items()}

    def _joined(self) -> JoinedRunContext:
        """This worker process's context of the run, built and joined by its first op of the run
        (the set's documents, the data key, the layout: a second or so) and kept for the next."""
        key = self.model_dump_json()
        run = _JOINED.get(key)
        if run is None:
            _forget_joined()
            settings = load_settings()  # the worker's own workspace (OMNI_RECOVERY_WORKSPACE)
            options = self.execute_options()
            set_io_priority(options.io_priority)  # this pool process may have served a run of another
            passphrase = code_location_passphrase()
            url = database_url(settings)
            folder = Path(self.run_folder)
            run = JoinedRunContext(
                settings, options, passphrase, url, write_run_report, self.run_id, folder, worker_name()
            )
            try:
                join(run)
            except BaseException:
                run.close()
                raise
            _JOINED[key] = run
        run.tracker.forget_verified()  # other processes verified files since this one last looked
        return run


def worker_config(options: ExecuteOptions, run_id: str, run_folder: Path) -> dict[str, str]:
    """WorkerRecovery's config of the run `run_id` (its folder, its options: each field kept)."""
    fields = {f.name: _plain(getattr(options, f.name)) for f in dataclasses.fields(options)}
    return {"run_id": run_id, "run_folder": str(run_folder), "options": json.dumps(fields)}


def _plain(value: Any) -> Any:
    """An option's value as JSON holds it (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


def _typed(hint: Any, value: Any) -> Any:
    """A JSON value back as the option's type `hint` says (Path, tuple; None stays None)."""
    if value is None:
        return None
    if hint is Path or Path in get_args(hint):
        return Path(value)
    return tuple(value) if get_origin(hint) is tuple else value


# The run this worker process last joined (one: a worker serves one run at a time), by its config.
_JOINED: dict[str, JoinedRunContext] = {}


def _forget_joined() -> None:
    for run in _JOINED.values():
        run.close()
    _JOINED.clear()


def worker_name() -> str:
    """The Celery worker running this (its node name, e.g. omni-node1@host), else this process."""
    from celery import current_task

    request = current_task.request if current_task else None
    hostname = getattr(request, "hostname", None)
    return str(hostname) if hostname else this_process()


def _group_op(group: StepGroup) -> OpDefinition:
    @op(
        name=group.name,
        ins={"after": In(Nothing)},
        out=Out(Nothing),
        tags={DAGSTER_CELERY_QUEUE_TAG: group.queue},
        required_resource_keys={"recovery_worker"},
        description=f"{group.phase} on {group.queue}: {', '.join(group.step_ids)}",
    )
    def _run(context: OpExecutionContext) -> None:
        statuses = context.resources.recovery_worker.run_group(group.step_ids)
        failed = sorted(s for s, status in statuses.items() if status == FAILED)
        context.log.info(f"{len(statuses)} steps, failed: {', '.join(failed) or 'none'}")

    return _run


def restore_by_node(plan_path: str, inventory_path: str) -> JobDefinition:
    """The job of this plan's steps, routed by the inventory's worker queues."""
    plan = plan_from_yaml(Path(plan_path).read_text(encoding="utf-8"), source=plan_path)
    inventory = load_inventory(Path(inventory_path), allow_system_root=True)
    queues = step_queues(
        plan, {n.name: n.queue for n in inventory.nodes}, {p.name: p.queue for p in inventory.storage}
    )
    groups = step_groups(plan, queues)
    if not groups:
        raise RecoveryError(f"{plan_path}: the plan has no step for a restore worker")
    dependencies: dict[str, Any] = {
        g.name: {"after": MultiDependencyDefinition([DependencyDefinition(a) for a in g.after])}
        for g in groups
        if g.after
    }
    graph = GraphDefinition(
        name=JOB_NAME, node_defs=[_group_op(g) for g in groups], dependencies=dependencies
    )
    return graph.to_job(
        executor_def=celery_executor,
        resource_defs={"recovery_worker": WorkerRecovery.configure_at_launch(), "io_manager": fs_io_manager},
    )


def reconstructable_restore_by_node(plan_path: str, inventory_path: str) -> ReconstructableJob:
    """The job as a code pointer a worker rebuilds it from."""
    return build_reconstructable_job(
        __name__,
        restore_by_node.__name__,
        reconstructable_kwargs={"plan_path": plan_path, "inventory_path": inventory_path},
    )
