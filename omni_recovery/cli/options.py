"""Options and helpers shared by every command: workspace, passphrase, sizes, errors, progress bars.

Every command module of omni_recovery.cli takes these from here, so an option reads the same
everywhere.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from omni_recovery.errors import RecoveryError
from omni_recovery.safe_text import safe_text
from omni_recovery.settings import PASSPHRASE_ENV

F = TypeVar("F", bound=Callable[..., Any])
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)i?b?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'4G', '700MiB', '1048576' → bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size such as 4G, 700M or 1048576")
    return int(match[1]) * 1024 ** "bkmgt".index((match[2] or "b").lower())


class SizeType(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        return value if isinstance(value, int) else parse_size(str(value))


def workspace_option(func: F) -> F:
    return click.option(
        "--workspace",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Workspace folder (database, catalog, reports). "
        "Default: $OMNI_RECOVERY_WORKSPACE or ./.omni-recovery.",
    )(func)


def progress_every_option(func: F) -> F:
    return click.option(
        "--progress-every",
        type=click.FloatRange(0.05, 3600),
        default=10.0,
        show_default=True,
        help="Seconds between progress lines when the output is not a terminal (a terminal shows a bar).",
    )(func)


def absolute_location_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback of --path: the location made absolute (it is recorded, and used from elsewhere)."""
    from omni_recovery.urls import absolute_location

    return absolute_location(value) if value is not None else None


def allow_system_root_option(func: F) -> F:
    return click.option(
        "--allow-system-root",
        is_flag=True,
        help="Accept inventory roots that are (or lie in) a system folder such as /, /etc, /usr or /var: "
        "refused by default, as a restore there overwrites the system.",
    )(func)


def passphrase_option(func: F) -> F:
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help=f"File holding the recovery passphrase (else ${PASSPHRASE_ENV}). "
        "Never given on the command line.",
    )(func)


def trusted_key_option(func: F) -> F:
    from omni_recovery.backupset.signing import TRUSTED_KEY_ENV

    return click.option(
        "--trusted-key",
        "trusted_keys",
        multiple=True,
        metavar="FILE|KEYID",
        help=f"A trusted signer: public key file or 64-hex key id; repeatable (also ${TRUSTED_KEY_ENV}, "
        "comma-separated).",
    )(func)


def ssh_options(func: F) -> F:
    """--ssh-identity, --bandwidth-limit and --ssh-data-channel, for the commands that write to targets."""
    func = click.option(
        "--ssh-data-channel",
        type=click.Choice(["auto", "sftp", "openssh"]),
        default="auto",
        show_default=True,
        help="How file bytes go to SSH roots: auto sends files of 4 MiB or more by OpenSSH's ssh (where "
        "it is installed, the root has an identity file, no --bandwidth-limit, and the account may run "
        "commands) and the rest over SFTP; sftp sends all over SFTP; openssh sends every file by ssh "
        "where it can. Each file is verified on the target either way.",
    )(func)
    func = click.option(
        "--bandwidth-limit",
        type=SizeType(),
        default=None,
        help="Most bytes per second written to each SSH node or pool (e.g. 50M), so a recovery leaves "
        "room for production traffic. Default: no limit.",
    )(func)
    return ssh_identity_option(
        "Private key for every ssh:// root (else each root's identity_file in the inventory, else "
        "the SSH agent). Keys only: an encrypted key goes in the agent."
    )(func)


def ssh_identity_option(help_text: str) -> Callable[[F], F]:
    """--ssh-identity FILE: the private key to log in to SSH hosts with."""
    return click.option(
        "--ssh-identity",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help=help_text,
    )


def inventory_option(help_text: str) -> Callable[[F], F]:
    """--inventory FILE (required): the new infrastructure's inventory.yaml."""
    return click.option(
        "--inventory",
        required=True,
        type=click.Path(dir_okay=False, exists=True, resolve_path=True, path_type=Path),
        help=help_text,
    )


def read_passphrase(passphrase_file: Path | None, *, required: bool = True) -> bytes | None:
    """The passphrase from the file given, else from the environment; never from argv."""
    if passphrase_file is not None:
        value = passphrase_file.read_bytes().rstrip(b"\r\n")
    else:
        value = os.environ.get(PASSPHRASE_ENV, "").encode("utf-8")
    if not value and required:
        raise RecoveryError(f"no recovery passphrase: give --passphrase-file FILE or set {PASSPHRASE_ENV}")
    return value or None


def fail(exc: RecoveryError) -> NoReturn:
    """Say a refusal in one line (a set's content in it escaped) and exit 1."""
    click.secho(f"error: {safe_text(str(exc))}", fg="red", err=True)
    sys.exit(1)


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RecoveryError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bars() -> Iterator[Callable[..., None]]:
    """A progress callback `(phase, amount, total=None)` drawing one bar per phase on stderr (bytes,
    but for files scanned and ISOs checked)."""
    from tqdm import tqdm

    bars: dict[str, tqdm[Any]] = {}
    units = {"scan": ("files", False), "check": ("ISO", False)}
    lock = threading.Lock()  # steps running at once report from their own threads

    def update(phase: str, amount: int, total: int | None = None) -> None:
        with lock:
            bar = bars.get(phase)
            if bar is None:
                unit, scale = units.get(phase, ("B", True))
                bar = bars[phase] = tqdm(
                    desc=f"{phase:>6}",
                    unit=unit,
                    unit_scale=scale,
                    unit_divisor=1024,
                    file=sys.stderr,
                    disable=None,
                    leave=True,
                )
            if total is not None:
                bar.total = total
                bar.refresh()
            if amount:
                bar.update(amount)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()
