"""A Tabular dataset input inside a step: the downloaded files, read with pandas on demand."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amlpipe.core.dataset import TabularDataset

__all__ = ["StepTabularDataset"]

_TABULAR_DEFAULTS: dict[str, Any] = {
    "separator": ",",
    "header": "all_files_same_headers",
    "encoding": "utf8",
    "infer_column_types": True,
    "support_multi_line": False,
    "empty_as_string": False,
    "include_path": False,
}
#: azureml's encoding names → Python codecs.
_ENCODINGS = {
    "utf8": "utf-8",
    "iso88591": "iso-8859-1",
    "latin1": "latin-1",
    "ascii": "ascii",
    "utf16": "utf-16",
    "utf32": "utf-32",
    "utf8bom": "utf-8-sig",
    "windows1252": "cp1252",
}


class StepTabularDataset(TabularDataset):
    """A Tabular dataset input of a step: its files are downloaded; ``to_pandas_dataframe()`` reads them."""

    def __init__(self, input_name: str, entry: Mapping[str, Any]) -> None:
        tabular = entry.get("tabular") or {}
        options = {**_TABULAR_DEFAULTS, **dict(tabular.get("options") or {})}
        super().__init__(
            {"kind": "Tabular", "paths": [], "options": options},
            registration={"name": entry.get("dataset_name") or input_name, "version": entry.get("dataset_version")},
        )
        self.input_name = input_name
        self.path = Path(str(entry.get("path") or "."))
        self.files = [Path(f) for f in tabular.get("files") or []]
        self.options = options

    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null") -> Any:
        """The files as one pandas DataFrame, read with the dataset's options.

        ``header``: ``all_files_same_headers`` (each file's first line is the header; columns are
        the first file's), ``only_first_file_has_headers``, ``combine_all_files_headers`` (the union
        of every file's columns) or ``no_headers`` (columns ``Column1``, ``Column2``, ...).
        ``infer_column_types=False`` keeps every column as strings; ``empty_as_string`` reads empty
        fields as ``""`` instead of missing; ``include_path`` adds a first column ``Path`` (the file,
        relative to the input's folder). Quoted line breaks are always read as part of the value.
        """
        import pandas  # type: ignore[import-untyped]  # only when asked: steps that never read tables stay light

        opts = self.options
        separator = str(opts["separator"])
        encoding = _ENCODINGS.get(str(opts["encoding"]).lower(), str(opts["encoding"]))
        header = {True: "all_files_same_headers", False: "no_headers"}.get(opts["header"], str(opts["header"]).lower())
        read: dict[str, Any] = {"encoding": encoding, "skip_blank_lines": True}
        if len(separator) > 1:  # pandas reads a longer separator as a regular expression
            read.update(sep=re.escape(separator), engine="python")
        else:
            read["sep"] = separator
        if not opts["infer_column_types"]:
            read["dtype"] = str
        if opts["empty_as_string"]:
            read.update(keep_default_na=False, na_values=[])
        frames = []
        columns: list[str] | None = None
        for i, file in enumerate(self.files):
            has_header = header in ("all_files_same_headers", "combine_all_files_headers") or (
                header == "only_first_file_has_headers" and i == 0
            )
            frame = pandas.read_csv(file, header=0 if has_header else None, **read)
            if header == "no_headers":
                frame.columns = [f"Column{n + 1}" for n in range(len(frame.columns))]
            elif columns is None:
                columns = [str(c) for c in frame.columns]
            elif header != "combine_all_files_headers" and len(frame.columns) == len(columns):
                frame.columns = columns  # the first file's header names the columns of every file
            if opts["include_path"]:
                frame.insert(0, "Path", _relative(file, self.path))
            frames.append(frame)
        if not frames:
            return pandas.DataFrame()
        return pandas.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def __repr__(self) -> str:
        return f"TabularDataset(name={self.name!r}, version={self.version!r}, files={len(self.files)})"


def _relative(file: Path, root: Path) -> str:
    if file == root:  # a single-file input: its path is the file
        return file.name
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return file.as_posix()
