"""`demo-env` (write a demo environment state folder) and `demo` (the main job end to end)."""

from __future__ import annotations

from pathlib import Path

import click

from omni_recovery.cli.options import handle_errors, progress_bars, workspace_option


@click.command("demo-env")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create (must not exist or be empty).",
)
@click.option("--nodes", default=5, show_default=True, help="Physical nodes.")
@click.option("--directors", default=3, show_default=True, help="Directors (one per node, in one ring).")
@click.option("--orchestrators", default=3, show_default=True, help="Orchestrator VMs (one cluster).")
@click.option("--applications", default=12, show_default=True, help="User applications.")
@click.option(
    "--volume-scale",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Volume data: tiny ≈ 2 MiB, small ≈ 20 MiB, medium ≈ 300 MiB, large ≈ 2.5 GiB.",
)
@click.option(
    "--volumes-per-node",
    type=int,
    default=None,
    help="About this many volumes a node in all (the seed's scale is 40): applications get extra blob "
    "volumes to reach it. Default: each application's one to three.",
)
@click.option("--seed", default=42, show_default=True, help="Same seed, same bytes.")
@click.option("--name", default="demo", show_default=True, help="Environment name.")
@click.option(
    "--with-database",
    is_flag=True,
    help="The last application is billing-db, its volume a real PostgreSQL data folder (initdb, 10,000 rows; "
    "needs the embedded server's binaries; not byte-identical between runs).",
)
@handle_errors
def demo_env(
    output: Path,
    nodes: int,
    directors: int,
    orchestrators: int,
    applications: int,
    volume_scale: str,
    volumes_per_node: int | None,
    seed: int,
    name: str,
    with_database: bool,
) -> None:
    """Write a realistic demo OmniCloud environment state folder.

    \b
    Example:
      omni-recovery demo-env --output ./demo/env --applications 12 --volume-scale small
      omni-recovery demo-env --output ./demo/big --nodes 50 --directors 32 --applications 500 \\
          --volumes-per-node 40 --volume-scale tiny
    """
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    options = DemoOptions(
        nodes=nodes,
        directors=directors,
        orchestrators=orchestrators,
        applications=applications,
        volume_scale=volume_scale,
        seed=seed,
        name=name,
        database=with_database,
        volumes_per_node=volumes_per_node,
    )
    with progress_bars() as progress:
        summary = write_demo_environment(output, options, progress=lambda n: progress("write", n))
    click.echo(f"demo environment written to {output}: {summary}")


@click.command()
@workspace_option
@click.option(
    "--volume-scale",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Size of the demo's volume data.",
)
@handle_errors
def demo(workspace: Path | None, volume_scale: str) -> None:
    """Run the main job on embedded defaults: a demo environment, backed up, and every step after it.

    Everything lands in the workspace folder (default ./.omni-recovery).

    \b
    Example:
      omni-recovery demo --volume-scale tiny
    """
    from omni_recovery.settings import load_settings
    from pipelines.demo_job import run_demo

    with progress_bars() as progress:
        run_demo(load_settings(workspace), volume_scale=volume_scale, progress=progress, echo=click.echo)
