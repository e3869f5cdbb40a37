"""The end-to-end speed goals of issue 18, each beside its baseline in the same run.

Run: python bench/end_to_end_goals.py [--cases fixed,big,small] [--big-gib 8] [--small-files 100000]
                                      [--rounds 3] [--workdir DIR] [--outdir DIR]

Each case makes a demo set (recovery_end_to_end.prepare: backed up, deeply validated, planned onto a
same-shaped inventory; untimed), then times the whole `omni-recovery execute-plan` command as an
operator runs it (a new process: imports, the Dagster run, tracking, every byte verified):
  fixed  a set of about 10 MiB with --parallel-factor 2, beside `python -c "import dagster"`:
         goal, at most 1.0 s more than the import
  big    a set of --big-gib GiB of volume data (one big file, chunked), beside `bsdtar -xf` of the same
         ISOs: goal, --parallel-factor 2 within 1.2 x bsdtar (`openssl dgst -sha256` of the ISOs
         printed too: the hashing alone that every restored byte costs)
  small  the tiny demo set plus --small-files files of 4 KiB spread over its volumes, beside bsdtar:
         goal, --parallel-factor 2 within 1.5 x bsdtar
For big and small, execute-plan also runs with --parallel-factor 1 and 4, and the speed-up over 1 is
printed. Every contender starts once freed memory has settled (timing.settle_memory); medians of
--rounds are printed with the load average, since the machine's two CPUs are shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recovery_end_to_end import PASSPHRASE, bsdtar, prepare, sha256_only
from timing import TMPFS, require_bsdtar, settle_memory, timed

GiB = 1024**3
SMALL_FILE = 4096
FACTORS = (1, 2, 4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="fixed,big,small", help="which of fixed, big, small")
    parser.add_argument("--big-gib", type=float, default=8.0)
    parser.add_argument("--small-files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="where the environments and sets go")
    parser.add_argument("--outdir", type=Path, default=TMPFS, help="where restores and extractions go")
    args = parser.parse_args()
    require_bsdtar()
    cases = {"fixed": fixed_cost, "big": big_set, "small": small_files}
    for name in args.cases.split(","):
        print(f"\n== {name} (load average {load()})", flush=True)
        cases[name](args)


def fixed_cost(args: argparse.Namespace) -> None:
    compile_project()
    with RecoverySet(args, size_gib=10 / 1024) as made:
        imports, commands = [], []
        for _ in range(args.rounds):  # alternating, so that the load hits both alike
            imports.append(timed(lambda: python("-c", "import dagster")))
            commands.append(made.execute_plan(2, cpu=True))
    for name, times in (
        ("python -c 'import dagster'", imports),
        ("execute-plan --parallel-factor 2", commands),
    ):
        walls = [wall for wall, _ in times]
        print(
            f"{name:34} wall median {statistics.median(walls):6.2f} s {spread(walls)}, "
            f"CPU median {statistics.median(cpu for _, cpu in times):6.2f} s"
        )
    extra = statistics.median(w for w, _ in commands) - statistics.median(w for w, _ in imports)
    extra_cpu = statistics.median(c for _, c in commands) - statistics.median(c for _, c in imports)
    print(
        f"fixed cost over the import: {extra:+.2f} s wall, {extra_cpu:+.2f} s CPU "
        f"(goal at most +1.0 s: {met(extra <= 1.0)})"
    )


def compile_project() -> None:
    """Byte-compile the project's packages before anything is timed, as pip compiled Dagster's when it
    installed it: an editable install's modules are compiled on first import, and never kept where
    PYTHONDONTWRITEBYTECODE is set (then every command would compile them again, the import of
    Dagster it is compared with would not)."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("omni_recovery", "pipelines", "assets", "transforms", "io_managers"):
        compileall.compile_dir(root / package, quiet=1)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: the project's modules were compiled beforehand", flush=True)


def big_set(args: argparse.Namespace) -> None:
    with RecoverySet(args, size_gib=args.big_gib) as made:
        compare(made, args.rounds, goal=1.2)


def small_files(args: argparse.Namespace) -> None:
    def populate(env: Path) -> None:
        volumes = sorted(p for p in (env / "volumes").glob("*/*") if p.is_dir())
        block = os.urandom(SMALL_FILE)
        for index in range(args.small_files):
            folder = volumes[index % len(volumes)] / "files" / "bench-small" / f"{index // 1000 % 1000:03}"
            folder.mkdir(parents=True, exist_ok=True)
            # Each file differs (its number in front), so none is stored once for several.
            (folder / f"f{index:06}").write_bytes(index.to_bytes(8, "big") + block[8:])

    with RecoverySet(args, size_gib=0.0, populate=populate) as made:
        compare(made, args.rounds, goal=1.5)


def compare(made: RecoverySet, rounds: int, goal: float) -> None:
    """bsdtar and execute-plan at each parallel factor, alternating, `rounds` times (wall and CPU)."""
    baseline: list[tuple[float, float]] = []
    hashing: list[tuple[float, float]] = []
    commands: dict[int, list[tuple[float, float]]] = {n: [] for n in FACTORS}
    for _ in range(rounds):
        baseline.append(made.bsdtar())
        hashing.append(timed(lambda: sha256_only(made.isos)))
        for factor in FACTORS:
            commands[factor].append(made.execute_plan(factor, cpu=True))
    base, base_cpu = medians(baseline)
    walls = [wall for wall, _ in baseline]
    print(f"bsdtar -xf (verifies nothing)        wall {base:7.2f} s {spread(walls)}  CPU {base_cpu:6.2f} s")
    digest, digest_cpu = medians(hashing)
    print(
        f"openssl dgst -sha256 (hashes only)   wall {digest:7.2f} s {spread([w for w, _ in hashing])}  "
        f"CPU {digest_cpu:6.2f} s  ratio {digest / base:5.2f}"
    )
    one = medians(commands[1])[0]
    for factor, times in commands.items():
        wall, cpu = medians(times)
        print(
            f"execute-plan --parallel-factor {factor}     wall {wall:7.2f} s {spread([w for w, _ in times])} "
            f" CPU {cpu:6.2f} s  ratio {wall / base:5.2f} (CPU {cpu / base_cpu:5.2f})  speed-up over 1: "
            f"{one / wall:4.2f}"
        )
    ratio = medians(commands[2])[0] / base
    print(f"ratio at --parallel-factor 2: {ratio:.2f} (goal at most {goal}: {met(ratio <= goal)})")


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


class RecoverySet:
    """A prepared set, planned onto roots under the output folder, and its two contenders."""

    def __init__(
        self, args: argparse.Namespace, size_gib: float, populate: Callable[[Path], None] = lambda env: None
    ) -> None:
        self.args, self.size_gib, self.populate = args, size_gib, populate

    def __enter__(self) -> RecoverySet:
        from omni_recovery.settings import load_settings

        self.work = Path(tempfile.mkdtemp(prefix="bench-goals-", dir=self.args.workdir))
        self.out = Path(tempfile.mkdtemp(prefix="bench-goals-out-", dir=self.args.outdir))
        self.settings = load_settings(self.work / "ws")
        options = argparse.Namespace(size_gib=self.size_gib, chunk_mib=None, max_iso_gib=None)
        try:
            self.plan, self.isos, volume_bytes, steps = prepare(
                options, self.work, self.out, self.settings, self.populate
            )
        except BaseException:
            self.__exit__()
            raise
        self.passphrase = self.work / "passphrase"
        self.passphrase.write_bytes(PASSPHRASE)
        print(
            f"set: {len(self.isos)} ISOs, {sum(i.stat().st_size for i in self.isos) / GiB:.2f} GiB; "
            f"volume data {volume_bytes / GiB:.2f} GiB; {steps} plan steps",
            flush=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        from omni_recovery.db.server import stop_embedded

        stop_embedded(self.settings)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)

    def execute_plan(self, factor: int, cpu: bool = False) -> Any:
        """Wall seconds of the command (and its CPU seconds, with `cpu`)."""
        shutil.rmtree(self.out / "infra", ignore_errors=True)
        settle_memory()
        command = [
            str(Path(sys.executable).with_name("omni-recovery")),
            "execute-plan",
            "--plan",
            str(self.plan),
            "--passphrase-file",
            str(self.passphrase),
            "--parallel-factor",
            str(factor),
            "--workspace",
            str(self.settings.workspace),
        ]
        wall, used = timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
        print(
            f"  execute-plan --parallel-factor {factor}: {wall:.2f} s (CPU {used:.2f} s), load {load()}",
            flush=True,
        )
        return (wall, used) if cpu else wall

    def bsdtar(self) -> tuple[float, float]:
        shutil.rmtree(self.out / "infra", ignore_errors=True)  # tmpfs is memory: one copy at a time
        settle_memory()
        wall, used = timed(lambda: bsdtar(self.isos, self.out / "bsdtar"))
        shutil.rmtree(self.out / "bsdtar")
        print(f"  bsdtar -xf: {wall:.2f} s (CPU {used:.2f} s), load {load()}", flush=True)
        return wall, used


def python(*arguments: str) -> None:
    subprocess.run([sys.executable, *arguments], check=True)


def spread(times: list[float]) -> str:
    return f"(min {min(times):.2f}, max {max(times):.2f})"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
