"""Reading a pipeline YAML file: safe loading, the line of every place, and problems as sentences.

The text is composed into nodes first (PyYAML's ``SafeLoader``): one walk over them records the line of
each place, refuses any tag that is not a plain value (``!!python/object``... never reach a
constructor), duplicate keys (which YAML would silently let the last one win), recursive aliases and
alias bombs. Only then is it loaded with ``yaml.safe_load``.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel

from amlpipe.exceptions import UserErrorException

if TYPE_CHECKING:
    import yaml

#: A place in the document: mapping keys and list indexes from the root.
YamlPath = tuple[str | int, ...]

#: At most this many values, counting every use of an alias (a guard against alias bombs).
MAX_VALUES = 100_000
#: At most this many characters in a file (a pipeline is a few kilobytes; PyYAML reads in pure Python).
MAX_CHARACTERS = 1024 * 1024
#: At most this many problems are listed in the error's message (all are in ``problems``).
MAX_SHOWN = 10

_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
_MERGE = _CORE + "merge"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class YamlProblem:
    """One problem of a pipeline file.

    Attributes:
        path: where it is, e.g. ``steps[1].arguments[3]`` ("" for the whole document).
        line: the 1-based line of that place (or of its nearest enclosing one), when known.
        message: what is wrong.
    """

    path: str
    line: int | None
    message: str

    def render(self, source: str) -> str:
        """``source:line: path: message`` (parts that are unknown left out)."""
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PipelineYamlError(UserErrorException):
    """A pipeline YAML file is invalid. The message lists the problems on one line.

    Attributes:
        source: the file, as named to ``pipeline_from_yaml``.
        problems: every problem found, in the order of the file.
    """

    def __init__(self, source: str, problems: Sequence[YamlProblem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: p.line or 0)
        shown = [p.render(source) for p in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            shown.append(f"and {len(self.problems) - MAX_SHOWN} more problems")
        super().__init__("; ".join(shown))


# -- reading ---------------------------------------------------------------------------------------


def read_yaml(text: str, source: str) -> tuple[Any, dict[YamlPath, int]]:
    """The document's plain values and the line of each place in it.

    Raises:
        PipelineYamlError: it is not YAML, or not plain values (see the module's docstring).
    """
    # Imported here, not with the module: steps' processes import amlpipe.pipeline, and need no PyYAML.
    import yaml

    if len(text) > MAX_CHARACTERS:
        raise PipelineYamlError(source, [YamlProblem("", None, f"the file is over {MAX_CHARACTERS} characters")])
    loader = _loader_class()(text)
    try:
        root = loader.get_single_node()  # composed once: walked, then constructed from the same nodes
        if root is None:
            raise PipelineYamlError(source, [YamlProblem("", None, "the file is empty; it needs at least steps:")])
        walk = _Walk(loader)
        walk.visit(root, ())
        if walk.size > MAX_VALUES:
            walk.problems.append(
                YamlProblem("", None, f"the file holds more than {MAX_VALUES} values (aliases counted each time)")
            )
        if walk.problems:
            raise PipelineYamlError(source, walk.problems)
        # Every tag was checked above: only plain values, resolved by the YAML 1.2 rules, are built.
        try:
            return loader.construct_document(root), walk.lines
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            problem = YamlProblem("", None, f"a value cannot be read ({type(exc).__name__}); quote it as a string")
            raise PipelineYamlError(source, [problem]) from exc
    except yaml.MarkedYAMLError as exc:  # a syntax error, or a mapping used as a key
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise PipelineYamlError(source, [YamlProblem("", line, f"not valid YAML: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise PipelineYamlError(source, [YamlProblem("", None, f"not valid YAML: {exc}")]) from exc
    except RecursionError as exc:
        raise PipelineYamlError(source, [YamlProblem("", None, "the values are nested too deeply")]) from exc
    finally:
        loader.dispose()


#: YAML 1.2's core schema for plain scalars, strictly: PyYAML's YAML 1.1 rules would turn
#: ``on``/``no`` into booleans, ``010`` into 8, ``12:30`` into 750 and ``2024-01-01`` into a date,
#: silently changing an argument. Here only ``true``/``false``, decimal integers (no leading zero, no
#: ``0x``/``0o``, no ``_``) and floats with a point or an exponent are typed; the rest stays a string.
_CORE_12 = (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
)
_RETYPED = frozenset(_CORE + t for t in ("bool", "int", "float", "timestamp"))


@functools.cache
def _loader_class() -> type[yaml.SafeLoader]:
    """PyYAML's SafeLoader with the plain-scalar rules of :data:`_CORE_12` instead of YAML 1.1's."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag not in _RETYPED]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for name, pattern, first in _CORE_12:
        Loader.add_implicit_resolver(_CORE + name, re.compile(pattern), list(first))
    return Loader


class _Walk:
    """One pass over the composed nodes: lines, refused tags (explicit ones too), duplicate keys,
    expanded size."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        import yaml

        self._loader = loader
        self._scalar = yaml.ScalarNode
        self._nodes = (yaml.SequenceNode, yaml.MappingNode)
        self.lines: dict[YamlPath, int] = {}
        self.problems: list[YamlProblem] = []
        self.size = 0
        self._sizes: dict[int, int] = {}
        self._open: set[int] = set()

    def visit(self, node: yaml.Node, path: YamlPath) -> None:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if node.tag not in _PLAIN_TAGS:
            shown = node.tag.replace(_CORE, "!!")
            self.problems.append(
                YamlProblem(
                    show_path(path),
                    line,
                    f"the tag {shown} is not allowed: a pipeline file holds plain values "
                    "(strings, numbers, true/false, null, lists and mappings)",
                )
            )
            return
        if isinstance(node, self._scalar) and node.tag != self._implicit_tag(node):
            shown = node.tag.replace(_CORE, "!!")
            self.problems.append(
                YamlProblem(
                    show_path(path),
                    line,
                    f"the tag {shown} is not allowed: write the value plainly (quote it to make it a string)",
                )
            )
            return
        if id(node) in self._open:
            self.problems.append(YamlProblem(show_path(path), line, "an alias refers to a value that contains it"))
            return
        if id(node) in self._sizes:  # an alias of a value already read: count it again, walk it once
            self.size += self._sizes[id(node)]
            return
        start = self.size
        self.size += 1
        self._open.add(id(node))
        sequence, mapping = self._nodes
        if isinstance(node, sequence):
            for index, item in enumerate(node.value):
                self.visit(item, (*path, index))
        elif isinstance(node, mapping):
            self._mapping(node, path)
        self._open.discard(id(node))
        self._sizes[id(node)] = self.size - start

    def _implicit_tag(self, node: yaml.ScalarNode) -> str:
        """The tag ``node`` would have without an explicit one (a plain scalar's by the rules, else str)."""
        plain = node.style is None
        return str(self._loader.resolve(self._scalar, node.value, (plain, not plain)))  # type: ignore[no-untyped-call]

    def _mapping(self, node: yaml.MappingNode, path: YamlPath) -> None:
        seen: dict[str, int] = {}
        merged: list[yaml.Node] = []
        for key, value in node.value:
            if key.tag == _MERGE:
                merged.append(value)  # after the keys written out, which override what it merges in
                continue
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                self.problems.append(
                    YamlProblem(show_path((*path, name)), line, f"duplicate key {name!r} (first on line {seen[name]})")
                )
                continue
            seen[name] = line
            self.lines.setdefault((*path, name), line)
            self.visit(key, (*path, name))
            self.visit(value, (*path, name))
        for value in merged:
            self.visit(value, path)


# -- messages --------------------------------------------------------------------------------------


def show_path(path: YamlPath) -> str:
    """``steps[1].arguments[3]``, ``parameters['my param']``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def show_value(value: Any) -> str:
    """A value as YAML shows it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return f"{value.isoformat()} (a date: quote it to make it a string)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return str(value)


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
}


def explain(model: type[BaseModel], loc: tuple[str | int, ...], error: Any) -> str:
    """A pydantic error as a sentence about the YAML."""
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        known = _keys_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {loc[-1]!r}{hint}" + (f"; expected one of: {', '.join(known)}" if known else "")
    if kind == "missing":
        return "required key is missing"
    if kind in _EXPECTED:
        hint = " (quote it to make it a string)" if kind == "string_type" and isinstance(given, int | float) else ""
        return f"expected {_EXPECTED[kind]}, got {show_value(given)}{hint}"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {show_value(given)}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    return str(error["msg"])


def _keys_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys the mapping at ``loc`` (inside a ``model``) may have."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            current = field.annotation
        else:
            args = get_args(current)  # list[X] → (X,); dict[str, X] → (str, X)
            if not args:
                return []
            current = args[-1]
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``X | None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation
