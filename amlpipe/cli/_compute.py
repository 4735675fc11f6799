"""``amlpipe compute``: create (an AmlCompute pool) and list compute targets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpipe.cli._common import (
    ConfigOption,
    DebugOption,
    JsonOption,
    cli_command,
    emit_fields,
    emit_json,
    emit_table,
    load_workspace,
    options,
)

if TYPE_CHECKING:
    from amlpipe.core.compute import ComputeTarget

compute_app = typer.Typer(
    no_args_is_help=True, help="Compute targets: pools whose max nodes is how many steps run at once."
)


def compute_json(c: ComputeTarget) -> dict[str, Any]:
    """A compute target, as ``--json`` prints it."""
    scale = c.scale_settings
    return {
        "name": c.name,
        "type": c.type,
        "provisioningState": c.provisioning_state,
        "vmSize": c.vm_size,
        "minNodes": None if scale is None else scale.minimum_node_count,
        "maxNodes": None if scale is None else scale.maximum_node_count,
        "idleSecondsBeforeScaledown": None if scale is None else scale.idle_seconds_before_scaledown,
    }


@compute_app.command("create")
@cli_command
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The target's name (steps name it as compute_target).")],
    max_nodes: Annotated[int, typer.Option("--max-nodes", help="How many steps it runs at once (at least 1).")],
    min_nodes: Annotated[int, typer.Option("--min-nodes", help="azureml's minimum node count (kept as given).")] = 0,
    vm_size: Annotated[str, typer.Option("--vm-size", help="azureml's VM size (recorded, not used).")] = "",
    idle_seconds: Annotated[
        int | None,
        typer.Option("--idle-seconds-before-scaledown", help="azureml's idle time (recorded, not used)."),
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Create an AmlCompute pool (AmlCompute.provisioning_configuration); the same settings again are no error."""
    from amlpipe.core.compute import AmlCompute, ComputeTarget

    provisioning = AmlCompute.provisioning_configuration(
        vm_size=vm_size, min_nodes=min_nodes, max_nodes=max_nodes, idle_seconds_before_scaledown=idle_seconds
    )  # checks the sizes (ValueError: exit 2) before the config is read
    opts = options(json_output, config, debug)
    created = ComputeTarget.create(load_workspace(opts.config), name, provisioning)
    if opts.json:
        emit_json(compute_json(created))
        return
    body = compute_json(created)
    emit_fields(
        [
            ("name", body["name"]),
            ("type", body["type"]),
            ("state", body["provisioningState"]),
            ("vm size", body["vmSize"] or None),
            ("min nodes", body["minNodes"]),
            ("max nodes", body["maxNodes"]),
        ]
    )


@compute_app.command("list")
@cli_command
def list_compute(json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False) -> None:
    """List compute targets (``local`` is built in and not listed)."""
    from amlpipe.core.compute import ComputeTarget

    opts = options(json_output, config, debug)
    found = ComputeTarget.list(load_workspace(opts.config))
    if opts.json:
        emit_json([compute_json(c) for c in found])
        return
    bodies = [compute_json(c) for c in found]
    emit_table(
        ("NAME", "TYPE", "STATE", "MIN NODES", "MAX NODES", "VM SIZE"),
        [(b["name"], b["type"], b["provisioningState"], b["minNodes"], b["maxNodes"], b["vmSize"]) for b in bodies],
    )
