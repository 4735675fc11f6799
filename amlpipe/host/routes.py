"""ASP.NET Core route templates, as the Functions host matches HTTP trigger routes.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}``, defaults
``{name=value}``, constraints ``{id:int}`` (chained: ``{id:int:min(1)}``), catch-all ``{*rest}`` /
``{**rest}``, and complex segments such as ``{file}.{ext}``. Constraints: int, long, bool, datetime,
decimal, double, float, guid, alpha, required, min(n), max(n), range(a,b), length(n), length(a,b),
minlength(n), maxlength(n), regex(expr).

Routes are ordered like ASP.NET's precedence: literal segments before constrained parameters,
before plain parameters, before catch-alls, so ``items/new`` wins over ``items/{id}``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from amlpipe.host.errors import HostConfigError

_PARAM = re.compile(r"\{([^{}]*)\}")
_CONSTRAINT = re.compile(r"^(?P<name>[a-zA-Z]+)(?:\((?P<arg>.*)\))?$")


def _is_number(kind: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            kind(value)
        except (ValueError, InvalidOperation):
            return False
        return True

    return check


def _is_int(value: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", value) is not None


def _int_in(value: str, low: int, high: int) -> bool:
    return _is_int(value) and low <= int(value) <= high


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _int_in(v, *_INT32),
    "long": lambda v: _int_in(v, *_INT64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "datetime": _is_number(datetime.fromisoformat),
    "decimal": _is_number(Decimal),
    "double": _is_number(float),
    "float": _is_number(float),
    "guid": _is_number(uuid.UUID),
    "alpha": lambda v: re.fullmatch(r"[a-zA-Z]+", v) is not None,
    "required": lambda v: v != "",
}


def _constraint(spec: str, template: str) -> Callable[[str], bool]:
    match = _CONSTRAINT.match(spec)
    if match is None:
        raise HostConfigError(f"Route '{template}': constraint '{spec}' is not valid.")
    name, arg = match.group("name").lower(), match.group("arg")
    if arg is None:
        if name not in _SIMPLE:
            raise HostConfigError(f"Route '{template}': unknown constraint '{spec}'.")
        return _SIMPLE[name]
    if name == "regex":
        pattern = re.compile(arg, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    try:
        numbers = [int(a) for a in arg.split(",")]
    except ValueError as exc:
        raise HostConfigError(f"Route '{template}': constraint '{spec}' needs integer arguments.") from exc
    checks: dict[tuple[str, int], Callable[[str], bool]] = {
        ("min", 1): lambda v: _is_int(v) and int(v) >= numbers[0],
        ("max", 1): lambda v: _is_int(v) and int(v) <= numbers[0],
        ("range", 2): lambda v: _is_int(v) and numbers[0] <= int(v) <= numbers[1],
        ("length", 1): lambda v: len(v) == numbers[0],
        ("length", 2): lambda v: numbers[0] <= len(v) <= numbers[1],
        ("minlength", 1): lambda v: len(v) >= numbers[0],
        ("maxlength", 1): lambda v: len(v) <= numbers[0],
    }
    check = checks.get((name, len(numbers)))
    if check is None:
        raise HostConfigError(f"Route '{template}': unknown constraint '{spec}'.")
    return check


def _split_constraints(body: str) -> list[str]:
    # Split "id:int:regex(^a:b$)" on the colons outside parentheses.
    parts, depth, current = [], 0, ""
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


@dataclass
class _Param:
    name: str
    group: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: list[Callable[[str], bool]] = field(default_factory=list)


@dataclass(frozen=True)
class RouteMatch:
    params: dict[str, str]


class RouteTemplate:
    """One compiled route template."""

    def __init__(self, template: str):
        self.template = template.strip("/")
        self._params: list[_Param] = []
        self._precedence: list[int] = []
        self._regex = re.compile(self._compile(), re.IGNORECASE | re.DOTALL)

    def _compile(self) -> str:
        pattern = ""
        segments = self.template.split("/") if self.template else []
        for index, segment in enumerate(segments):
            if segment == "":
                raise HostConfigError(f"Route '{self.template}': empty segment ('//').")
            pieces = _PARAM.split(segment)  # literal, param, literal, param, ...
            literals, bodies = pieces[0::2], pieces[1::2]
            if "{" in "".join(literals) or "}" in "".join(literals):
                raise HostConfigError(f"Route '{self.template}': unbalanced braces in '{segment}'.")
            params = [self._param(body, index) for body in bodies]
            is_last = index == len(segments) - 1
            if any(p.catch_all for p in params) and (not is_last or len(bodies) != 1 or segment != f"{{{bodies[0]}}}"):
                raise HostConfigError(f"Route '{self.template}': a catch-all must be the whole last segment.")
            if len(params) == 1 and segment == f"{{{bodies[0]}}}":
                param = params[0]
                if param.catch_all:
                    pattern += f"(?:/(?P<{param.group}>.*))?"
                    self._precedence.append(5)
                elif param.optional or param.default is not None:
                    if not is_last and not all(self._optional_segment(s) for s in segments[index + 1 :]):
                        raise HostConfigError(f"Route '{self.template}': only trailing parameters may be optional.")
                    pattern += f"(?:/(?P<{param.group}>[^/]+))?"
                    self._precedence.append(4 if not param.checks else 3)
                else:
                    pattern += f"/(?P<{param.group}>[^/]+)"
                    self._precedence.append(4 if not param.checks else 3)
                continue
            if not params:
                pattern += "/" + re.escape(segment)
                self._precedence.append(1)
                continue
            # Complex segment, e.g. {file}.{ext}: parameters are lazy up to the next literal.
            complex_pattern = re.escape(literals[0])
            for param, literal in zip(params, literals[1:], strict=True):
                if param.catch_all:
                    raise HostConfigError(f"Route '{self.template}': a catch-all must be the whole last segment.")
                group = f"(?P<{param.group}>[^/]+?)"
                complex_pattern += (f"(?:{group})?" if param.optional else group) + re.escape(literal)
            pattern += "/" + complex_pattern
            self._precedence.append(2)
        return f"^{pattern}/?$"

    @staticmethod
    def _optional_segment(segment: str) -> bool:
        match = re.fullmatch(r"\{(\*{0,2})([^{}]*)\}", segment)
        if match is None:
            return False
        body = match.group(2)
        return bool(match.group(1)) or body.endswith("?") or "=" in body

    def _param(self, body: str, index: int) -> _Param:
        catch_all = body.startswith("*")
        body = body.lstrip("*")
        default = None
        if "=" in body:
            body, default = body.split("=", 1)
        optional = body.endswith("?")
        body = body.rstrip("?")
        name, *constraints = _split_constraints(body)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise HostConfigError(f"Route '{self.template}': parameter name '{name}' is not valid.")
        if any(p.name.lower() == name.lower() for p in self._params):
            raise HostConfigError(f"Route '{self.template}': parameter '{name}' appears twice.")
        param = _Param(
            name=name,
            group=f"p{len(self._params)}",
            optional=optional,
            catch_all=catch_all,
            default=default,
            checks=[_constraint(c, self.template) for c in constraints],
        )
        self._params.append(param)
        return param

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(self._precedence)

    def match(self, path: str) -> RouteMatch | None:
        """Match a request path (without the route prefix, no leading slash needed)."""
        candidate = "/" + path.strip("/") if path.strip("/") else ""
        found = self._regex.match(candidate)
        if found is None:
            return None
        params: dict[str, str] = {}
        for param in self._params:
            value = found.group(param.group)
            if value is None or value == "":
                if param.default is not None:
                    params[param.name] = param.default
                continue
            if not all(check(value) for check in param.checks):
                return None
            params[param.name] = value
        return RouteMatch(params=params)


def precedence_key(template: RouteTemplate) -> tuple[tuple[int, ...], int]:
    """Sort key: lower segment kinds first; at equal kinds, longer templates first."""
    return (template.precedence, -len(template.precedence))
