"""Index a Python v2 Functions app the way the worker does (``function_app.py`` → ``get_functions()``).

The result is a list of ``FunctionSpec``: each function's trigger and bindings with ``%Setting%``
tokens resolved, its user callable, and what the invoker needs to bind arguments by name.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from amlpipe.host.errors import FunctionIndexError, HostConfigError
from amlpipe.host.sdktypes import DeferredBinding, deferred_binding
from amlpipe.host.settings import AppSettings

#: Trigger types this host listens for.
TRIGGER_TYPES = ("httpTrigger", "queueTrigger", "timerTrigger", "blobTrigger")
#: Non-trigger binding types this host can bind (anything else is refused at start-up, loudly).
BINDING_TYPES = ("http", "queue", "blob")


@dataclass(frozen=True)
class BindingSpec:
    """One binding other than the trigger, with settings resolved."""

    name: str
    type: str
    direction: str  # "in" | "out"
    path: str | None = None  # blob
    queue_name: str | None = None  # queue
    connection: str | None = None
    data_type: str | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """An indexed function, ready for a listener and the invoker."""

    name: str
    trigger_type: str
    trigger_arg: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    is_async: bool
    bindings: tuple[BindingSpec, ...] = field(default_factory=tuple)
    annotations: dict[str, Any] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    retry: dict[str, Any] | None = None
    #: Parameters annotated with an SDK type (``blob.BlobClient``): bound from model binding data.
    deferred: dict[str, DeferredBinding] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """The host's full function name, used in lock, timer and receipt paths."""
        return f"Host.Functions.{self.name}"

    def outputs(self) -> tuple[BindingSpec, ...]:
        return tuple(b for b in self.bindings if b.direction == "out")

    def inputs(self) -> tuple[BindingSpec, ...]:
        return tuple(b for b in self.bindings if b.direction == "in")

    def wants(self, parameter: str, data_type: str | None) -> type | None:
        """``str`` or ``bytes`` when the parameter's annotation or ``data_type`` asks for it."""
        annotation = self.annotations.get(parameter)
        if annotation is str or data_type == "string":
            return str
        if annotation is bytes or data_type == "binary":
            return bytes
        return None


def load_app(app_dir: Path, script_file: str = "function_app.py") -> func.FunctionRegister:
    """Import the app module by its stem and return its single ``FunctionRegister``."""
    module_name = Path(script_file).stem
    root = str(app_dir.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    if not (app_dir / script_file).is_file():
        raise FunctionIndexError(f"{app_dir / script_file} not found.")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise FunctionIndexError(f"Importing {script_file} failed: {type(exc).__name__}: {exc}") from exc
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise FunctionIndexError(f"Could not find top level function app instances in {script_file}.")
    if len(apps) > 1:
        raise FunctionIndexError(f"Found {len(apps)} function app instances in {script_file}; there must be one.")
    return apps[0]


def index_functions(app: func.FunctionRegister, settings: AppSettings) -> list[FunctionSpec]:
    """Build ``FunctionSpec`` for every function of the app, resolving ``%Setting%`` tokens."""
    try:
        functions = app.get_functions()
    except (ValueError, TypeError) as exc:
        raise FunctionIndexError(f"Indexing the app failed: {exc}") from exc
    return [_spec(f, settings) for f in functions]


def _value(raw: Any) -> Any:
    """Enum members to their wire values (AuthLevel.ANONYMOUS → 'anonymous')."""
    if isinstance(raw, list):
        return [_value(r) for r in raw]
    return getattr(raw, "value", raw)


def _data_type(raw: Any) -> str | None:
    """``DataType.STRING`` → ``"string"`` (its ``.value`` is an int, so compare by name)."""
    if raw is None:
        return None
    name = getattr(raw, "name", raw)
    return str(name).lower()


def _resolve(settings: AppSettings, value: Any, what: str) -> Any:
    return settings.resolve_tokens(value, what=what) if isinstance(value, str) else value


def _spec(function: Any, settings: AppSettings) -> FunctionSpec:
    name = function.get_function_name()
    trigger = function.get_trigger()
    if trigger is None or trigger.type not in TRIGGER_TYPES:
        kind = getattr(trigger, "type", None)
        raise HostConfigError(
            f"Function '{name}': trigger type '{kind}' is not supported by the local host "
            f"(supported: {', '.join(TRIGGER_TYPES)})."
        )
    trigger_dict: dict[str, Any] = {}
    for key in (
        "route",
        "methods",
        "auth_level",
        "queue_name",
        "connection",
        "schedule",
        "run_on_startup",
        "use_monitor",
        "path",
        "source",
    ):
        if hasattr(trigger, key):
            trigger_dict[key] = _resolve(settings, _value(getattr(trigger, key)), f"Function '{name}' {key}")
    trigger_dict["data_type"] = _data_type(getattr(trigger, "_data_type", None))
    bindings: list[BindingSpec] = []
    for binding in function.get_bindings():
        if binding is trigger:
            continue
        if binding.type not in BINDING_TYPES:
            raise HostConfigError(
                f"Function '{name}': binding '{binding.name}' of type '{binding.type}' is not supported by the "
                f"local host (supported: {', '.join(BINDING_TYPES)})."
            )
        direction = "out" if _value(binding._direction) in (1, "OUT") else "in"
        bindings.append(
            BindingSpec(
                name=binding.name,
                type=binding.type,
                direction=direction,
                path=_resolve(settings, getattr(binding, "path", None), f"Function '{name}' binding {binding.name}"),
                queue_name=_resolve(
                    settings,
                    getattr(binding, "queue_name", None),
                    f"Function '{name}' binding {binding.name}",
                ),
                connection=getattr(binding, "connection", None),
                data_type=_data_type(getattr(binding, "_data_type", None)),
            )
        )
    user_function = function.get_user_function()
    signature = inspect.signature(user_function)
    try:
        annotations = inspect.get_annotations(user_function, eval_str=True)
    except Exception:  # noqa: BLE001 - unresolvable string annotations just mean "no type hint"
        annotations = {}
    claimed = {trigger.name, *(b.name for b in bindings)}
    for parameter in signature.parameters:
        if parameter not in claimed and parameter != "context":
            raise HostConfigError(
                f"Function '{name}': parameter '{parameter}' has no binding; every parameter must match a "
                "binding's arg_name (or be named 'context')."
            )
    deferred: dict[str, DeferredBinding] = {}
    inputs = [(trigger.type, trigger.name), *((b.type, b.name) for b in bindings if b.direction == "in")]
    for kind, parameter in inputs:
        what = f"Function '{name}' parameter '{parameter}'"
        found = deferred_binding(kind, annotations.get(parameter), what=what)
        if found is not None:
            deferred[parameter] = found
    retry = function.get_settings_dict("retry_policy") if hasattr(function, "get_settings_dict") else None
    return FunctionSpec(
        name=name,
        trigger_type=trigger.type,
        trigger_arg=trigger.name,
        trigger=trigger_dict,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        bindings=tuple(bindings),
        annotations=annotations,
        parameters=tuple(signature.parameters),
        retry=retry,
        deferred=deferred,
    )
