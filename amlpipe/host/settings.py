"""App settings and host.json, read the way Core Tools and the Functions host read them.

* ``local.settings.json`` ``Values`` become environment variables unless the variable is already set
  (the environment wins, with a warning); ``null`` values are skipped, empty strings are set.
  ``ConnectionStrings`` become ``ConnectionStrings:<name>`` configuration keys.
* ``host.json`` must say ``"version": "2.0"``; the sections we honour are parsed into ``HostConfig``
  with the real host's defaults (``extensions.queues`` as the v5 Storage extension has them,
  ``functionTimeout`` 30 minutes, ``routePrefix`` ``api``).
* ``connection="X"`` names an app setting: ``AzureWebJobsX`` then ``X``, each under
  ``ConnectionStrings:`` first; an empty name means ``AzureWebJobsStorage``.
* ``%Name%`` tokens in trigger attributes are replaced by the app setting ``Name``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from amlpipe.host.errors import HostConfigError
from shared.timespan import try_parse_timespan

log = logging.getLogger("amlpipe.host")

DEFAULT_PORT = 7071
_TOKEN = re.compile(r"%([^%]+)%")


def parse_timespan(text: str, *, what: str) -> timedelta:
    """Parse a .NET TimeSpan string (``[d.]hh:mm[:ss[.fffffff]]`` or ``d``) as host.json uses them."""
    value = try_parse_timespan(text)
    if value is None:
        raise HostConfigError(f"{what}: {text!r} is not a TimeSpan; use hh:mm:ss, e.g. '00:05:00'.")
    return value


@dataclass(frozen=True)
class QueuesOptions:
    """``extensions.queues`` with the Storage extension v5 defaults (development environment)."""

    batch_size: int = 16
    new_batch_threshold: int | None = None
    # The v5 extension uses 2 s in the Development environment unless host.json sets a value.
    max_polling_interval: timedelta = timedelta(seconds=2)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    def threshold(self) -> int:
        if self.new_batch_threshold is not None:
            return self.new_batch_threshold
        return (self.batch_size // 2) * (os.cpu_count() or 1)


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the local host honours."""

    route_prefix: str = "api"
    function_timeout: timedelta | None = timedelta(minutes=30)
    queues: QueuesOptions = field(default_factory=QueuesOptions)
    functions_allow_list: tuple[str, ...] | None = None
    log_levels: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)


def load_host_json(app_dir: Path) -> HostConfig:
    """Read and validate ``host.json`` in ``app_dir``."""
    path = app_dir / "host.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise HostConfigError(f"{path} not found: a Functions app needs host.json.") from exc
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != "2.0":
        raise HostConfigError(f'{path}: "version" must be the string "2.0".')
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    route_prefix = str(http.get("routePrefix", "api")).strip("/")
    functions = data.get("functions")
    if functions is not None and (not isinstance(functions, list) or not all(isinstance(f, str) for f in functions)):
        raise HostConfigError(f'{path}: "functions" must be a list of function names.')
    try:
        queues = _queues(extensions.get("queues") or {})
    except (TypeError, ValueError) as exc:
        if isinstance(exc, HostConfigError):
            raise
        raise HostConfigError(f"{path}: extensions.queues has a value that is not a number: {exc}") from exc
    return HostConfig(
        route_prefix=route_prefix,
        function_timeout=_function_timeout(data.get("functionTimeout")),
        queues=queues,
        functions_allow_list=tuple(functions) if functions is not None else None,
        log_levels=dict((data.get("logging") or {}).get("logLevel") or {}),
        raw=data,
    )


def _function_timeout(value: Any) -> timedelta | None:
    if value is None:
        return timedelta(minutes=30)
    if str(value).strip() == "-1":
        return None
    timeout = parse_timespan(str(value), what="functionTimeout")
    if timeout < timedelta(seconds=1):
        raise HostConfigError("functionTimeout must be at least 00:00:01 (or -1 for no limit).")
    return timeout


def _queues(section: Mapping[str, Any]) -> QueuesOptions:
    defaults = QueuesOptions()
    batch_size = int(section.get("batchSize", defaults.batch_size))
    if not 1 <= batch_size <= 32:
        raise HostConfigError(f"extensions.queues.batchSize must be 1..32, not {batch_size}.")
    max_dequeue = int(section.get("maxDequeueCount", defaults.max_dequeue_count))
    if max_dequeue < 1:
        raise HostConfigError("extensions.queues.maxDequeueCount must be at least 1.")
    polling = defaults.max_polling_interval
    if "maxPollingInterval" in section:
        polling = _timespan_or_ms(section["maxPollingInterval"], "extensions.queues.maxPollingInterval")
        if polling < timedelta(milliseconds=100):
            raise HostConfigError("extensions.queues.maxPollingInterval must be at least 100 ms.")
    visibility = defaults.visibility_timeout
    if "visibilityTimeout" in section:
        visibility = _timespan_or_ms(section["visibilityTimeout"], "extensions.queues.visibilityTimeout")
        if visibility.microseconds:
            # The queue service takes whole seconds; say so instead of truncating silently.
            log.warning("extensions.queues.visibilityTimeout %s is rounded down to whole seconds.", visibility)
    encoding = str(section.get("messageEncoding", defaults.message_encoding)).lower()
    if encoding not in ("base64", "none"):
        raise HostConfigError("extensions.queues.messageEncoding must be 'base64' or 'none'.")
    threshold = section.get("newBatchThreshold")
    return QueuesOptions(
        batch_size=batch_size,
        new_batch_threshold=int(threshold) if threshold is not None else None,
        max_polling_interval=polling,
        visibility_timeout=visibility,
        max_dequeue_count=max_dequeue,
        message_encoding=encoding,
    )


def _timespan_or_ms(value: Any, what: str) -> timedelta:
    # host.json accepts either a TimeSpan string or (v2 schema) a number of milliseconds.
    if isinstance(value, int | float):
        return timedelta(milliseconds=value)
    return parse_timespan(str(value), what=what)


@dataclass(frozen=True)
class LocalSettings:
    """``local.settings.json``: the parts Core Tools uses."""

    values: Mapping[str, str | None] = field(default_factory=dict)
    connection_strings: Mapping[str, str] = field(default_factory=dict)
    port: int = DEFAULT_PORT
    address: str | None = None
    cors: tuple[str, ...] = ()
    cors_credentials: bool = False


def find_local_settings(app_dir: Path) -> Path | None:
    """Core Tools looks for local.settings.json in the app folder and then its parents."""
    for folder in (app_dir, *app_dir.parents):
        candidate = folder / "local.settings.json"
        if candidate.is_file():
            return candidate
    return None


def load_local_settings(app_dir: Path) -> LocalSettings:
    path = find_local_settings(app_dir)
    if path is None:
        return LocalSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HostConfigError(f"{path} must hold a JSON object with 'Values'.")
    if data.get("IsEncrypted"):
        raise HostConfigError(f"{path} is encrypted; the local host reads only unencrypted settings.")
    values = data.get("Values") or {}
    host = data.get("Host") or {}
    cors = tuple(o.strip() for o in str(host.get("CORS") or "").split(",") if o.strip())
    return LocalSettings(
        values={str(k): (None if v is None else str(v)) for k, v in values.items()},
        connection_strings={str(k): str(v) for k, v in (data.get("ConnectionStrings") or {}).items()},
        port=_port(host.get("LocalHttpPort", DEFAULT_PORT), path),
        address=host.get("LocalHttpAddress"),
        cors=cors,
        cors_credentials=bool(host.get("CORSCredentials", False)),
    )


def _port(value: Any, path: Path) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError) as exc:
        raise HostConfigError(f"{path}: Host.LocalHttpPort must be a port number, not {value!r}.") from exc
    if not 0 <= port <= 65535:
        raise HostConfigError(f"{path}: Host.LocalHttpPort must be 0-65535, not {port}.")
    return port


def apply_local_settings(settings: LocalSettings, environ: MutableMapping[str, str]) -> None:
    """Export ``Values`` into ``environ``; variables already set win, as in Core Tools."""
    for key, value in settings.values.items():
        if value is None:
            continue
        if key in environ:
            if environ[key] != value:
                log.warning("Skipping '%s' from local.settings.json: already set in the environment.", key)
            continue
        environ[key] = value


class AppSettings:
    """Read-only view of app settings: the environment plus ``ConnectionStrings:<name>`` keys."""

    def __init__(self, environ: Mapping[str, str], connection_strings: Mapping[str, str] | None = None):
        self._environ = environ
        self._connection_strings = dict(connection_strings or {})

    def get(self, name: str) -> str | None:
        if name.startswith("ConnectionStrings:"):
            return self._connection_strings.get(name.split(":", 1)[1])
        value = self._environ.get(name)
        if value is None and "." in name:
            # On Linux, app settings with dots arrive as underscores (AzureWebJobs_fn_Disabled).
            value = self._environ.get(name.replace(".", "_"))
        return value

    def resolve_tokens(self, text: str, *, what: str) -> str:
        """Replace each ``%Name%`` with the app setting ``Name``; a missing setting is an error."""

        def substitute(match: re.Match[str]) -> str:
            value = self.get(match.group(1))
            if value is None:
                raise HostConfigError(f"{what}: app setting '{match.group(1)}' (from %{match.group(1)}%) is not set.")
            return value

        return _TOKEN.sub(substitute, text)

    def connection_string(self, connection: str | None) -> str:
        """Resolve a binding's ``connection`` name to a storage connection string."""
        name = (connection or "").strip() or "Storage"
        candidates = [f"AzureWebJobs{name}", name]
        for candidate in candidates:
            for key in (f"ConnectionStrings:{candidate}", candidate):
                value = self.get(key)
                if value and value.strip():
                    return value
        raise HostConfigError(
            f"Storage account connection string 'AzureWebJobs{name}' does not exist. "
            f"Set app setting 'AzureWebJobs{name}' or '{name}' (local.settings.json Values or the environment)."
        )

    def number(
        self, name: str, default: float, *, minimum: float, maximum: float | None = None, unit: str = "seconds"
    ) -> float:
        """A numeric app setting, ``default`` when unset; non-numbers and out-of-range values are errors."""
        raw = self.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw)
        except ValueError as exc:
            raise HostConfigError(f"App setting {name} must be a number of {unit}, not {raw!r}.") from exc
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
            raise HostConfigError(f"App setting {name} must be {bounds} {unit}, not {raw!r}.")
        return value

    def is_disabled(self, function_name: str) -> bool:
        value = self.get(f"AzureWebJobs.{function_name}.Disabled")
        return value is not None and value.strip().lower() in ("true", "1")
