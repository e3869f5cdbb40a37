"""Notifications: one message when a recovery finishes or fails, or a drill, verification or
freshness check fails, sent to a webhook and/or by email.

How it works: the channels are configured once per workspace, in `<workspace>/notifications.yaml`:

    webhook: https://hooks.example.org/omni-recovery      # POSTed the notice as JSON
    email:
      smtp: mail.example.org:25                            # plain SMTP (a relay inside the site)
      from: omni-recovery@example.org
      to: [ops@example.org]

`load_channels` reads it (no file: no channels); `send` delivers one `Notice` (verdict, set,
duration, report location, failing check) to every channel configured and returns their names.
The Dagster run status sensors (pipelines/sensors.py) build the notices from finished runs.

What can go wrong: a malformed file is refused in one line naming it and the key; a channel that
cannot be reached raises NotificationError naming it (the other channels are still tried, and
the sensor's tick fails visibly in the UI). SMTP here is unauthenticated and unencrypted: point it
at a relay inside the recovery site.
"""

from __future__ import annotations

import json
import smtplib
import urllib.request
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from omni_recovery.errors import RecoveryError

CONFIG_FILE = "notifications.yaml"
TIMEOUT_SECONDS = 10


class NotificationError(RecoveryError):
    """A channel could not be reached or refused the message."""


@dataclass(frozen=True)
class Notice:
    """What happened, to whom it matters: one finished or failed run."""

    verdict: str  # e.g. "recovery SUCCEEDED", "drill FAILED"
    run_id: str
    backup_set_id: str | None = None
    seconds: float | None = None
    report: str | None = None
    detail: str | None = None  # the failing check and its one-line error

    def subject(self) -> str:
        return f"omni-recovery: {self.verdict}" + (
            f" (set {self.backup_set_id})" if self.backup_set_id else ""
        )

    def body(self) -> str:
        lines = [
            self.subject(),
            f"run: {self.run_id}",
            f"set: {self.backup_set_id or 'unknown'}",
            f"duration: {self.seconds:.0f} s" if self.seconds is not None else "duration: unknown",
            f"report: {self.report or 'none'}",
        ]
        return "\n".join([*lines, *([f"detail: {self.detail}"] if self.detail else [])]) + "\n"


@dataclass(frozen=True)
class Channels:
    webhook: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    mail_from: str = "omni-recovery@localhost"
    mail_to: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.webhook or (self.smtp_host and self.mail_to))


def load_channels(workspace: Path) -> Channels:
    """The channels of `<workspace>/notifications.yaml`; none when the file does not exist."""
    path = workspace / CONFIG_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return Channels()
    except (OSError, yaml.YAMLError) as exc:
        raise RecoveryError(f"{path}: cannot be read as YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecoveryError(f"{path}: expected a mapping with webhook and/or email")
    webhook = _text(doc, "webhook", path)
    email = doc.get("email") or {}
    if not isinstance(email, dict):
        raise RecoveryError(f"{path}: email: expected a mapping with smtp, from and to")
    smtp = _text(email, "smtp", path)
    host, _, port = smtp.partition(":") if smtp else ("", "", "")
    to = [email["to"]] if isinstance(email.get("to"), str) else email.get("to") or []
    if not (port or "25").isdigit() or not all(isinstance(a, str) and "@" in a for a in to):
        raise RecoveryError(f"{path}: email: smtp must be HOST[:PORT] and to a list of addresses")
    sender = _text(email, "from", path) or Channels.mail_from
    return Channels(webhook, host or None, int(port or 25), sender, tuple(to))


def _text(doc: dict[str, Any], key: str, path: Path) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise RecoveryError(f"{path}: {key}: expected text, found {type(value).__name__}")
    return value


def send(notice: Notice, channels: Channels) -> list[str]:
    """Deliver `notice` to every configured channel; the names of those that took it."""
    sent, failed = [], []
    wanted = [("webhook", _post)] if channels.webhook else []
    wanted += [("email", _mail)] if channels.smtp_host and channels.mail_to else []
    for name, deliver in wanted:
        try:
            deliver(notice, channels)
            sent.append(name)
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(f"{name}: {exc}")
    if failed:
        raise NotificationError(f"notification of run {notice.run_id} not delivered: " + "; ".join(failed))
    return sent


def _post(notice: Notice, channels: Channels) -> None:
    assert channels.webhook is not None
    request = urllib.request.Request(
        channels.webhook,
        data=json.dumps({"subject": notice.subject(), **asdict(notice)}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        response.read()


def _mail(notice: Notice, channels: Channels) -> None:
    assert channels.smtp_host is not None
    message = EmailMessage()
    message["Subject"] = notice.subject()
    message["From"] = channels.mail_from
    message["To"] = ", ".join(channels.mail_to)
    message.set_content(notice.body())
    with smtplib.SMTP(channels.smtp_host, channels.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
        smtp.send_message(message)


def latest_recovery(url: str) -> tuple[str, str | None] | None:
    """(set id, report path or None) of the most recently started recovery run in the database at `url`."""
    from omni_recovery.db.connection import connect

    with connect(url) as conn:
        row = conn.execute(
            "SELECT p.backup_set_id, s.detail->>'report' FROM omni.recovery_runs r "
            "JOIN omni.recovery_plans p USING (plan_id) "
            "LEFT JOIN omni.recovery_steps s ON s.run_id = r.run_id AND s.step_id = 'report/recovery' "
            "ORDER BY r.started_at DESC LIMIT 1"
        ).fetchone()
    return None if row is None else (str(row[0]), row[1])
