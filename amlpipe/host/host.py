"""The local Functions host: loads settings and the app, serves HTTP, runs the trigger listeners.

Lifecycle: ``Host.run()`` starts everything, serves until ``request_stop()`` (SIGINT/SIGTERM in the
CLI), then stops listeners (in-flight work finished or released for redelivery) and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import uvicorn

from amlpipe.host.errors import HostConfigError
from amlpipe.host.http import HttpFrontend
from amlpipe.host.indexing import FunctionSpec, index_functions, load_app
from amlpipe.host.invoke import Invoker
from amlpipe.host.keys import KeyStore, load_or_create_keys
from amlpipe.host.logs import install as install_log_filter
from amlpipe.host.queues import LEASE, LEASE_SETTING, queue_trigger_listener
from amlpipe.host.retry import RETRYABLE_TRIGGERS
from amlpipe.host.settings import (
    AppSettings,
    HostConfig,
    LocalSettings,
    apply_local_settings,
    load_host_json,
    load_local_settings,
)
from amlpipe.host.storage import StorageAccounts, WakeUpHub, default_host_id

log = logging.getLogger("amlpipe.host")

VERSION = "4.0.0-amlpipe"
_HOST_ID = re.compile(r"^(?=.{1,32}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class Listener(Protocol):
    """A trigger listener. ``start`` returns once listening; ``stop`` ends it without losing work."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class HostOptions:
    app_dir: Path
    port: int | None = None  # None: local.settings.json Host.LocalHttpPort, else 7071
    address: str | None = None  # None: Host.LocalHttpAddress, else 127.0.0.1
    enable_auth: bool = False
    blob_scan_interval: float = 2.0  # seconds between container scans (the dev-storage default)
    shutdown_grace: float = 30.0  # seconds in-flight work may take to finish at shutdown
    keys_file: Path | None = None  # where new function keys are shown once (default .amlpipe/host-keys.json)


@dataclass
class HostContext:
    """Everything a listener needs from the host."""

    host_id: str
    app_dir: Path
    config: HostConfig
    settings: AppSettings
    storage: StorageAccounts
    wakeups: WakeUpHub
    invoker: Invoker
    options: HostOptions
    functions: list[FunctionSpec] = field(default_factory=list)
    queue_lease: timedelta = LEASE  # the queue message lease (10 minutes unless the test setting says)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host decides what a signal means."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Host:
    """One local host process serving one Functions app."""

    def __init__(self, options: HostOptions, environ: MutableMapping[str, str] | None = None):
        self.options = options
        self._environ: MutableMapping[str, str] = environ if environ is not None else os.environ
        self._stop = asyncio.Event()
        self._listeners: list[Listener] = []
        self._server: _Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.context: HostContext | None = None
        self.frontend: HttpFrontend | None = None
        self.bound_port: int | None = None
        self.unfinished: list[str] = []  # worker threads still running user code after stop

    def request_stop(self) -> None:
        self._stop.set()

    def _configure(self) -> tuple[LocalSettings, HostContext]:
        app_dir = self.options.app_dir.resolve()
        local = load_local_settings(app_dir)
        apply_local_settings(local, self._environ)
        config = load_host_json(app_dir)
        settings = AppSettings(self._environ, local.connection_strings)
        host_id = (settings.get("AzureFunctionsWebHost__hostid") or default_host_id(str(app_dir))).lower()
        if not _HOST_ID.match(host_id):
            raise HostConfigError(
                "AzureFunctionsWebHost__hostid must be 1-32 of a-z, 0-9 and '-', not starting or ending with '-'."
            )
        threads = settings.number("PYTHON_THREADPOOL_THREAD_COUNT", 0, minimum=0, maximum=1024, unit="threads")
        self._pool = ThreadPoolExecutor(max_workers=int(threads) or None, thread_name_prefix="fn")
        storage = StorageAccounts(settings)
        wakeups = WakeUpHub()
        invoker = Invoker(
            storage=storage,
            wakeups=wakeups,
            message_encoding=config.queues.message_encoding,
            timeout=config.function_timeout,
            app_dir=str(app_dir),
            pool=self._pool,
        )
        app = load_app(app_dir, settings.get("PYTHON_SCRIPT_FILE_NAME") or "function_app.py")
        functions = index_functions(app, settings)
        context = HostContext(
            host_id=host_id,
            app_dir=app_dir,
            config=config,
            settings=settings,
            storage=storage,
            wakeups=wakeups,
            invoker=invoker,
            options=self.options,
            functions=functions,
            queue_lease=_queue_lease(settings),
        )
        return local, context

    def _enabled(self, context: HostContext) -> list[FunctionSpec]:
        enabled = []
        allow = context.config.functions_allow_list
        for function in context.functions:
            if allow is not None and function.name not in allow:
                log.info("Function '%s' is not in host.json 'functions': not loaded.", function.name)
            elif context.settings.is_disabled(function.name):
                log.info("Function '%s' is disabled (AzureWebJobs.%s.Disabled).", function.name, function.name)
            else:
                if function.retry and function.trigger_type not in RETRYABLE_TRIGGERS:
                    log.warning(
                        "Function '%s': retry policies apply to timer triggers only; a %s keeps its own retries "
                        "(queue and blob: host.json maxDequeueCount).",
                        function.name,
                        function.trigger_type,
                    )
                enabled.append(function)
        return enabled

    def _build_listeners(self, context: HostContext, functions: list[FunctionSpec]) -> list[Listener]:
        listeners: list[Listener] = []
        for function in functions:
            if function.trigger_type == "queueTrigger":
                listeners.append(
                    queue_trigger_listener(
                        function,
                        storage=context.storage,
                        wakeups=context.wakeups,
                        invoker=context.invoker,
                        options=context.config.queues,
                        shutdown_grace=self.options.shutdown_grace,
                        lease=context.queue_lease,
                    )
                )
            elif function.trigger_type == "timerTrigger":
                from amlpipe.host.timers import TimerListener

                listeners.append(TimerListener(context, function))
        blob_functions = [f for f in functions if f.trigger_type == "blobTrigger"]
        if blob_functions:
            from amlpipe.host.blobs import BlobTriggerListener

            listeners.append(BlobTriggerListener(context, blob_functions))
        return listeners

    async def run(self) -> None:
        """Start, serve until ``request_stop()``, then shut down cleanly."""
        local, context = self._configure()
        self.context = context
        function_logs = install_log_filter(context.config.log_levels)
        functions = self._enabled(context)
        keys: KeyStore | None = None
        if self.options.enable_auth:
            keys_file = self.options.keys_file or (context.app_dir / ".amlpipe" / "host-keys.json")
            keys = await load_or_create_keys(context.storage.blob_service(None), context.host_id, keys_file)
            log.info("Function keys are enforced; keys created on first start are in %s.", keys_file)
        http_functions = [f for f in functions if f.trigger_type == "httpTrigger"]
        self.frontend = HttpFrontend(
            functions=http_functions,
            invoker=context.invoker,
            route_prefix=context.config.route_prefix,
            host_id=context.host_id,
            version=VERSION,
            keys=keys,
            cors_origins=local.cors,
            cors_credentials=local.cors_credentials,
        )
        address = self.options.address or local.address or "127.0.0.1"
        port = self.options.port if self.options.port is not None else local.port
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when their
        # proto says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            raise HostConfigError(
                f"Cannot listen on {address}:{port}: {exc.strerror}. Is another host running?"
            ) from exc
        self.bound_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.frontend,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=max(1, int(self.options.shutdown_grace)),
        )
        self._server = _Server(config)
        server_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._listeners = self._build_listeners(context, functions)
        try:
            # Together, not one after another: a listener whose first storage call waits out its retries
            # (storage down) must not hold the others, nor the host's "started", for the sum of them.
            await asyncio.gather(*(listener.start() for listener in self._listeners))
            self.frontend.state = "Running"
            for function in functions:
                log.info(
                    "Function '%s': %s",
                    function.name,
                    _describe(function, context.config.route_prefix, address, self.bound_port),
                )
            log.info("Host started (id=%s) on http://%s:%d", context.host_id, address, self.bound_port)
            await self._stop.wait()
        finally:
            self.frontend.state = "Stopping"
            log.info("Host stopping: finishing in-flight work.")
            # Stop accepting HTTP first; in-flight requests and listener work share the same grace.
            self._server.should_exit = True
            results = await asyncio.gather(
                server_task, *(listener.stop() for listener in self._listeners), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    log.error("Stopping part of the host failed", exc_info=result)
            await context.storage.close()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            for handler in logging.getLogger().handlers:
                handler.removeFilter(function_logs)
            self.unfinished = context.invoker.running_threads()
            if self.unfinished:
                # Python cannot stop a running thread; the CLI ends the process instead of waiting.
                log.warning("Sync function code still running in %s at shutdown.", ", ".join(self.unfinished))
            log.info("Host stopped.")


def _queue_lease(settings: AppSettings) -> timedelta:
    # Whole seconds: the queue service takes visibility timeouts in seconds.
    seconds = settings.number(LEASE_SETTING, LEASE.total_seconds(), minimum=1, maximum=LEASE.total_seconds())
    return timedelta(seconds=int(seconds))


def _describe(function: FunctionSpec, prefix: str, address: str, port: int) -> str:
    trigger = function.trigger
    if function.trigger_type == "httpTrigger":
        methods = ",".join(trigger.get("methods") or ["ALL"])
        route = str(trigger.get("route") or function.name)
        base = f"/{prefix}" if prefix else ""
        return f"[{methods}] http://{address}:{port}{base}/{route}"
    if function.trigger_type == "queueTrigger":
        return f"queueTrigger on '{trigger['queue_name']}'"
    if function.trigger_type == "timerTrigger":
        return f"timerTrigger '{trigger['schedule']}'"
    return f"blobTrigger on '{trigger['path']}'"
