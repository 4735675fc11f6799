"""``amlpipe datastore``: list, upload, download (Azure Blob and S3 datastores alike, through the SDK).

Files move straight between this machine and storage, as ``Datastore.upload``/``download`` move them.
The SDK's progress lines go to stderr; stdout gets one summary (or its JSON).
"""

from __future__ import annotations

import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpipe.cli._common import (
    CliError,
    ConfigOption,
    DebugOption,
    ExitCode,
    JsonOption,
    cli_command,
    emit_json,
    emit_table,
    load_workspace,
    options,
)

if TYPE_CHECKING:
    from amlpipe.core.datastore import AmazonS3Datastore, AzureBlobDatastore, Datastore
    from amlpipe.core.workspace import Workspace

datastore_app = typer.Typer(no_args_is_help=True, help="Datastores: list them, upload and download files.")

DatastoreName = Annotated[str, typer.Argument(metavar="DATASTORE", help="The datastore's name.")]


def datastore_json(d: Datastore) -> dict[str, Any]:
    """A datastore, as ``--json`` prints it (never a credential: the service returns none)."""
    from amlpipe.core.datastore import AmazonS3Datastore, AzureBlobDatastore

    body: dict[str, Any] = {
        "name": d.name,
        "type": d.datastore_type,
        "isDefault": d.is_default,
        "credentialType": d.credential_type,
    }
    if isinstance(d, AzureBlobDatastore):
        body.update({"containerName": d.container_name, "accountName": d.account_name})
    elif isinstance(d, AmazonS3Datastore):
        body.update({"bucketName": d.bucket_name, "endpointUrl": d.endpoint_url, "region": d.region})
    return body


def _location(d: Datastore) -> str:
    from amlpipe.core.datastore import AmazonS3Datastore, AzureBlobDatastore

    if isinstance(d, AzureBlobDatastore):
        return f"{d.account_name}/{d.container_name}" if d.account_name else d.container_name
    if isinstance(d, AmazonS3Datastore):
        return f"s3://{d.bucket_name}" + (f" ({d.endpoint_url})" if d.endpoint_url else "")
    return ""


def _file_datastore(ws: Workspace, name: str) -> AzureBlobDatastore | AmazonS3Datastore:
    from amlpipe.core.datastore import AmazonS3Datastore, AzureBlobDatastore, Datastore

    found = Datastore.get(ws, name)
    if not isinstance(found, AzureBlobDatastore | AmazonS3Datastore):
        raise CliError(ExitCode.USAGE, f"Datastore {name!r} is a {found.datastore_type} datastore: it holds no files.")
    return found


@datastore_app.command("list")
@cli_command
def list_datastores(json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False) -> None:
    """List the workspace's datastores, the default first."""
    from amlpipe.core.datastore import Datastore

    opts = options(json_output, config, debug)
    found = Datastore.list(load_workspace(opts.config))
    if opts.json:
        emit_json([datastore_json(d) for d in found])
        return
    emit_table(
        ("NAME", "TYPE", "DEFAULT", "CREDENTIAL", "LOCATION"),
        [(d.name, d.datastore_type, "*" if d.is_default else "", d.credential_type, _location(d)) for d in found],
    )


@datastore_app.command("upload")
@cli_command
def upload(
    datastore: DatastoreName,
    src_dir: Annotated[Path, typer.Argument(metavar="SRC_DIR", help="The local folder whose files to upload.")],
    target_path: Annotated[
        str,
        typer.Option(
            "--target-path", help="The folder on the datastore to upload into ('.' for its root); relative, no '..'."
        ),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files that exist (default: keep them).")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Upload every file under SRC_DIR to --target-path on a datastore, keeping their relative paths."""
    if not src_dir.is_dir():
        raise CliError(ExitCode.USAGE, f"{src_dir} is not a folder.")
    opts = options(json_output, config, debug)
    found = _file_datastore(load_workspace(opts.config), datastore)
    with redirect_stdout(sys.stderr):  # the SDK's progress lines: stdout is for the summary
        summary = found._upload_dir(src_dir, target_path, overwrite=overwrite, show_progress=True)
    where = summary.reference.path_on_datastore or ""
    if opts.json:
        emit_json(
            {
                "datastore": found.name,
                "targetPath": where,
                "files": summary.files,
                "uploaded": summary.uploaded,
                "skipped": summary.files - summary.uploaded,
            }
        )
        return
    kept = summary.files - summary.uploaded
    note = f" ({kept} already there, kept: --overwrite replaces them)" if kept else ""
    typer.echo(f"Uploaded {summary.uploaded} of {summary.files} files from {src_dir} to {found.name}:/{where}{note}.")


@datastore_app.command("download")
@cli_command
def download(
    datastore: DatastoreName,
    target_dir: Annotated[
        Path, typer.Argument(metavar="TARGET_DIR", help="The local folder to download into (created if needed).")
    ],
    prefix: Annotated[
        str | None,
        typer.Option(help="Only the file or folder at this path on the datastore (default: everything)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace local files that exist (default: keep them).")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Download the files of a datastore (under --prefix) into TARGET_DIR, keeping their paths."""
    opts = options(json_output, config, debug)
    found = _file_datastore(load_workspace(opts.config), datastore)
    with redirect_stdout(sys.stderr):  # the SDK's progress lines: stdout is for the summary
        count = found.download(target_dir, prefix=prefix, overwrite=overwrite, show_progress=True)
    if opts.json:
        emit_json({"datastore": found.name, "prefix": prefix or "", "targetDir": str(target_dir), "downloaded": count})
        return
    typer.echo(f"Downloaded {count} files from {found.name}:/{prefix or ''} into {target_dir}.")
