"""Notifications from real runs, through the run status sensors, to a local HTTP receiver and a local
SMTP server started here."""

from __future__ import annotations

import asyncio
import email
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunsFilter,
    SkipReason,
    build_run_status_sensor_context,
)

from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.plan.generate import generate, record_plan_source, write_plan_files
from omni_recovery.practice.notifications import load_channels
from omni_recovery.settings import Settings
from omni_recovery.validate import store, validate
from pipelines.recovery_runner import execute_recovery
from pipelines.resources import PracticeResource
from pipelines.runner import dagster_instance
from pipelines.schedules import backup_freshness
from pipelines.sensors import DRILL_TAG, notify_failures, notify_recovery_finished
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set


class Receiver:
    """A local webhook endpoint (HTTP POST bodies) and a local SMTP server (messages)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.mails: list[email.message.Message] = []


class AnyPortController(Controller):
    """aiosmtpd's server on the port the kernel gives its own bind (port 0): no other process can take
    a port between its choice and the bind. The controller's first connection goes to that port."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str, str]]:
    got = Receiver()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.mails.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    smtp = AnyPortController(Mailbox(), hostname="127.0.0.1", port=0, ready_timeout=120)
    smtp.start()
    try:
        yield got, f"http://127.0.0.1:{http.server_address[1]}/hook", f"127.0.0.1:{smtp.port}"
    finally:
        smtp.stop()
        http.shutdown()


def configure(workspace: Path, webhook: str, smtp: str) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "notifications.yaml").write_text(
        f"webhook: {webhook}\nemail:\n  smtp: {smtp}\n  from: omni@site.example\n  to: [ops@site.example]\n"
    )


def context_for(
    instance: DagsterInstance, run_id: str, event_type: DagsterEventType, sensor: str, **res: Any
) -> Any:
    run = instance.get_run_by_id(run_id)
    (record,) = instance.all_logs(run_id, of_type=event_type)
    assert run is not None and record.dagster_event is not None
    return build_run_status_sensor_context(
        sensor_name=sensor,
        dagster_event=record.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources=res,
    )


def test_a_failed_freshness_run_is_notified_by_webhook_and_email(
    receiver: tuple[Receiver, str, str], tmp_path: Path, fresh_database_url: str
):
    got, webhook, smtp = receiver
    configure(tmp_path, webhook, smtp)
    init_database(fresh_database_url)
    practice = PracticeResource(workspace=str(tmp_path), database_url=fresh_database_url)
    instance = DagsterInstance.ephemeral()
    result = backup_freshness.execute_in_process(
        instance=instance, resources={"practice": practice}, raise_on_error=False
    )
    assert not result.success

    context = context_for(
        instance, result.run_id, DagsterEventType.RUN_FAILURE, "notify_failures", practice=practice
    )
    assert notify_failures(context.for_run_failure()) is None

    (post,) = got.posts
    assert post["verdict"] == "freshness check FAILED" and post["run_id"] == result.run_id
    assert (
        post["detail"] == "[newest_set_is_fresh] no backup set is registered: backups have never arrived here"
    )
    assert isinstance(post["seconds"], float)
    (mail,) = got.mails
    assert mail["Subject"] == "omni-recovery: freshness check FAILED" and mail["To"] == "ops@site.example"
    body = mail.get_payload()
    assert (
        isinstance(body, str) and f"run: {result.run_id}" in body and "detail: [newest_set_is_fresh]" in body
    )


def finished_recoveries(instance: DagsterInstance) -> list[DagsterRun]:
    return [
        r
        for r in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))
        if "recovery_report" in (r.step_keys_to_execute or ())
    ]


def recover(location: Path, settings: Settings, url: str, demo: DemoSet, folder: Path) -> None:
    """A real recovery of the set at `location` (validated, planned) onto local folders under `folder`."""
    with connect(url) as conn:
        store(conn, validate(str(location), demo.trusted, PASSPHRASE, deep=True))
    shapes = [
        (f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib)
        for n in environment_from_folder(demo.env).nodes
    ]
    folder.mkdir(parents=True)
    inventory = folder / "inventory.yaml"
    inventory.write_text(inventory_to_yaml(make_inventory(shapes, root=(folder / "site").as_uri())))
    plan, _ = generate(str(location), inventory, "basic")
    plan_path = folder / "recovery-plan.yaml"
    write_plan_files(plan, plan_path)
    record_plan_source(plan_path, str(location), inventory)
    execute_recovery(settings, ExecuteOptions(plan_path), PASSPHRASE)


def test_a_drills_recovery_is_not_announced_as_a_recovery(
    receiver: tuple[Receiver, str, str],
    demo_set: DemoSet,
    tmp_path: Path,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    from pipelines.drill import DrillOptions, run_drill

    got, webhook, smtp = receiver
    workspace = tmp_path / "ws"
    settings = Settings(workspace, database_url)
    configure(workspace, webhook, smtp)
    location = extra_set(demo_set, tmp_path_factory, "drilled-quietly", "ntf2")
    drill = run_drill(settings, DrillOptions(str(location), demo_set.trusted, PASSPHRASE))
    assert drill.passed, drill.verdict()
    instance = dagster_instance(settings)
    (restore,) = finished_recoveries(instance)
    assert restore.tags[DRILL_TAG] == drill.drill_id
    practice = PracticeResource(workspace=str(workspace), database_url=database_url)
    context = context_for(
        instance, restore.run_id, DagsterEventType.RUN_SUCCESS, "notify_recovery_finished", practice=practice
    )

    skipped = notify_recovery_finished(context)

    assert isinstance(skipped, SkipReason) and skipped.skip_message == "nothing to notify"
    assert got.posts == [] and got.mails == []


def test_a_finished_recovery_is_notified_with_its_set_duration_and_report(
    receiver: tuple[Receiver, str, str],
    demo_set: DemoSet,
    tmp_path: Path,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    got, webhook, smtp = receiver
    workspace = tmp_path / "ws"
    settings = Settings(workspace, database_url)
    location = extra_set(demo_set, tmp_path_factory, "notified", "ntf1")  # not t1: other tests own its plans
    recover(location, settings, database_url, demo_set, tmp_path / "site-plan")
    instance = dagster_instance(settings)
    (restore,) = finished_recoveries(instance)
    assert DRILL_TAG not in restore.tags
    practice = PracticeResource(workspace=str(workspace), database_url=database_url)
    context = context_for(
        instance, restore.run_id, DagsterEventType.RUN_SUCCESS, "notify_recovery_finished", practice=practice
    )

    skipped = notify_recovery_finished(context)
    assert isinstance(skipped, SkipReason) and "no notification channel configured" in str(
        skipped.skip_message
    )
    configure(workspace, webhook, smtp)
    assert notify_recovery_finished(context) is None

    (post,) = got.posts
    assert (post["verdict"], post["backup_set_id"]) == ("recovery SUCCEEDED", "ntf1")
    assert post["report"] and Path(post["report"]).is_file() and post["seconds"] > 0
    assert post["detail"].split(" recommendation(s) (omni performance optimize): ")[0].isdigit()
    assert got.mails[0]["Subject"] == "omni-recovery: recovery SUCCEEDED (set ntf1)"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- a list\n", "expected a mapping"),
        ("webhook: 7\n", "webhook: expected text"),
        ("email:\n  smtp: host:x\n  to: [ops@x]\n", "smtp must be HOST[:PORT]"),
        ("email: [1]\n", "email: expected a mapping"),
    ],
)
def test_a_malformed_configuration_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, text: str, complaint: str
):
    (tmp_path / "notifications.yaml").write_text(text)
    with pytest.raises(RecoveryError, match=re.escape(complaint)) as caught:
        load_channels(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'notifications.yaml'}: ") and "\n" not in str(
        caught.value
    )
