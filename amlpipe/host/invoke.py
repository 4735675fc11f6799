"""Call a user function the way the Python worker does, and write its outputs only on success.

* Arguments are bound by parameter name: the trigger argument, ``func.Out`` objects for output
  bindings, blob inputs read before the call, and ``context`` when the function asks for it.
* A trigger or blob input annotated with an SDK type (``blob.BlobClient``) is built from model
  binding data by the extension's converter, as the worker does (``amlpipe.host.sdktypes``).
* ``async def`` functions run on the host's event loop; sync ones in a thread pool
  (``PYTHON_THREADPOOL_THREAD_COUNT`` workers, else the stdlib default).
* ``functionTimeout`` bounds each invocation. A sync function that times out keeps its thread until
  it returns (Python cannot kill a thread); the invocation is reported failed at once.
* Outputs (queue messages, blobs, the ``$return`` value) are collected, and written only when the
  function returned normally. A function that raises writes nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime as dt
import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.functions import _abc as func_abc
from azure.functions import blob as func_blob

from amlpipe.host.indexing import BindingSpec, FunctionSpec
from amlpipe.host.logs import current_function
from amlpipe.host.retry import RetryPolicy
from amlpipe.host.sdktypes import DeferredBindings, ModelBindingData, blob_binding_data
from amlpipe.host.storage import StorageAccounts, WakeUpHub, blob_written_key, encode_message, ensure_container

log = logging.getLogger("amlpipe.host")
_TOKEN = re.compile(r"\{([^{}]+)\}")


class FunctionFailed(Exception):
    """The user function raised or timed out. ``__cause__`` holds the original exception."""

    def __init__(self, function: str, invocation_id: str, reason: str):
        super().__init__(f"Function '{function}' (Id={invocation_id}) failed: {reason}")
        self.function = function
        self.invocation_id = invocation_id
        self.reason = reason


class _Out(func.Out[Any]):
    """The concrete ``func.Out`` the worker passes for output bindings."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(func_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int):
        self._count = retry_count
        self._max = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._count

    @property
    def max_retry_count(self) -> int:
        return self._max

    @property
    def exception(self) -> Any:
        return None


class _Context(func.Context):
    def __init__(
        self, invocation_id: str, function_name: str, function_directory: str, retry_count: int, max_retry_count: int
    ):
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._retry = _RetryContext(retry_count, max_retry_count)
        self._trace = _TraceContext()
        self._tls = threading.local()
        self._tls.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return self._retry


@dataclass
class Trigger:
    """What a listener hands the invoker: the converted trigger value and its binding data."""

    value: Any  # for an SDK-type parameter, the ModelBindingData the host sends
    reason: str
    binding_data: Mapping[str, Any] = field(default_factory=dict)
    retry_count: int = 0
    max_retry_count: int = 0


@dataclass
class Outcome:
    """A successful invocation: its id, duration and ``$return`` value (HTTP response, ...)."""

    invocation_id: str
    duration_ms: float
    return_value: Any = None


def _resolve_path(template: str, data: Mapping[str, Any], what: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "rand-guid":
            return str(uuid.uuid4())
        if token.lower() == "datetime":
            return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        for key, value in data.items():
            if key.lower() == token.lower() and isinstance(value, str | int | float):
                return str(value)
        raise KeyError(f"{what}: binding expression '{{{token}}}' has no value in the trigger's binding data")

    return _TOKEN.sub(substitute, template)


_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")


def resolve_blob_path(template: str, data: Mapping[str, Any], what: str) -> tuple[str, str]:
    """Resolve a blob binding path to ``(container, blob name)``, refusing escapes.

    Values come from trigger data a client controls (queue message JSON, route parameters, blob
    names), so a ``..`` segment could otherwise reach another container through URL normalisation.
    """
    path = _resolve_path(template, data, what)
    container, _, name = path.partition("/")
    if not _CONTAINER.match(container):
        raise ValueError(f"{what}: '{container}' is not a valid container name (3-63 of a-z, 0-9 and '-')")
    segments = name.split("/")
    if not name or "\\" in name or "\0" in name or any(seg in ("", ".", "..") for seg in segments):
        raise ValueError(f"{what}: blob name '{name}' is empty or has an empty, '.' or '..' segment")
    return container, name


def binding_data_from_json(body: bytes) -> dict[str, Any]:
    """Top-level JSON properties of a payload become binding data (``{id}`` in an output path)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in parsed.items() if isinstance(v, str | int | float)} if isinstance(parsed, dict) else {}


class Invoker:
    """Runs invocations of indexed functions with the host's storage, pool and timeout."""

    def __init__(
        self,
        *,
        storage: StorageAccounts,
        wakeups: WakeUpHub,
        message_encoding: str,
        timeout: dt.timedelta | None,
        app_dir: str,
        pool: ThreadPoolExecutor,
    ):
        self._storage = storage
        self._wakeups = wakeups
        self._encoding = message_encoding
        self._timeout = timeout.total_seconds() if timeout is not None else None
        self._app_dir = app_dir
        self._pool = pool
        self._running = _RunningThreads()
        self._deferred = DeferredBindings()

    def running_threads(self) -> list[str]:
        """Worker threads running sync user code now; Python cannot stop them."""
        return self._running.names()

    async def invoke(self, function: FunctionSpec, trigger: Trigger) -> Outcome:
        """Invoke ``function``; raise ``FunctionFailed`` if it raises or times out."""
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, trigger.reason, invocation_id)
        deadline = asyncio.timeout(self._timeout)
        try:
            kwargs, outs = await self._arguments(function, trigger, invocation_id)
            async with deadline:
                result = await self._call(function, kwargs)
            await self._write_outputs(function, outs, result, trigger.binding_data)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            # Only our own deadline is "Timeout value exceeded"; a TimeoutError the function raised
            # itself is an ordinary failure with its traceback.
            timed_out = isinstance(exc, TimeoutError) and deadline.expired()
            reason = "Timeout value exceeded" if timed_out else f"{type(exc).__name__}: {exc}"
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)\n%s",
                function.name,
                invocation_id,
                elapsed,
                reason,
                exc_info=not timed_out,
            )
            raise FunctionFailed(function.name, invocation_id, reason) from exc
        elapsed = (time.perf_counter() - started) * 1000
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
            function.name,
            invocation_id,
            elapsed,
        )
        return Outcome(invocation_id=invocation_id, duration_ms=elapsed, return_value=result)

    async def invoke_with_retries(
        self,
        function: FunctionSpec,
        trigger: Trigger,
        policy: RetryPolicy | None,
        stopping: asyncio.Event,
        may_continue: Callable[[], bool] = lambda: True,
    ) -> Outcome:
        """``invoke``, retried in-process per the function's ``@app.retry`` policy.

        Waits between attempts end early when ``stopping`` is set; no retry starts once
        ``may_continue()`` says no (a timer that lost its singleton lock). The last failure is raised.
        """
        retry = 0
        if policy is not None:
            trigger = dataclasses.replace(trigger, max_retry_count=policy.max_retry_count)
        while True:
            try:
                return await self.invoke(function, trigger)
            except FunctionFailed:
                retry += 1
                if policy is None or not policy.allows(retry) or stopping.is_set() or not may_continue():
                    raise
                delay = policy.delay_before(retry)
                log.info("Retrying 'Functions.%s' in %.1fs (retry %d).", function.name, delay, retry)
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                except TimeoutError:
                    pass
                if stopping.is_set() or not may_continue():
                    raise
                trigger = dataclasses.replace(trigger, retry_count=retry)

    async def _arguments(
        self, function: FunctionSpec, trigger: Trigger, invocation_id: str
    ) -> tuple[dict[str, Any], dict[str, _Out]]:
        kwargs: dict[str, Any] = {function.trigger_arg: await self._trigger_argument(function, trigger)}
        outs: dict[str, _Out] = {}
        for binding in function.bindings:
            if binding.name == "$return":
                continue
            if binding.direction == "out":
                outs[binding.name] = kwargs[binding.name] = _Out()
            elif binding.type == "blob":
                kwargs[binding.name] = await self._read_blob(function, binding, trigger.binding_data)
        if "context" in function.parameters and "context" not in kwargs:
            kwargs["context"] = _Context(
                invocation_id, function.name, self._app_dir, trigger.retry_count, trigger.max_retry_count
            )
        return kwargs, outs

    async def _call(self, function: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        # Run in a copy of the context with the function marked, so its log records (on the loop or
        # in the worker thread) are filtered by its host.json log level.
        context = contextvars.copy_context()
        context.run(current_function.set, function.name)
        if function.is_async:
            return await asyncio.create_task(function.user_function(**kwargs), context=context)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, functools.partial(context.run, self._running.run, function, kwargs)
        )

    async def _trigger_argument(self, function: FunctionSpec, trigger: Trigger) -> Any:
        deferred = function.deferred.get(function.trigger_arg)
        if deferred is None:
            return trigger.value
        if not isinstance(trigger.value, ModelBindingData):
            raise TypeError(f"the '{function.trigger_type}' listener sent no model binding data for an SDK type")
        return await self._deferred.decode(
            deferred,
            trigger.value,
            function=function.name,
            parameter=function.trigger_arg,
            trigger_metadata=trigger.binding_data,
        )

    async def _read_blob(self, function: FunctionSpec, binding: BindingSpec, data: Mapping[str, Any]) -> Any:
        assert binding.path is not None
        what = f"Function '{function.name}' binding '{binding.name}'"
        container, name = resolve_blob_path(binding.path, data, what)
        deferred = function.deferred.get(binding.name)
        if deferred is not None:
            # SDK type: the function reads the blob itself, so it is neither read nor checked here.
            binding_data = blob_binding_data(binding.connection, container, name)
            return await self._deferred.decode(
                deferred, binding_data, function=function.name, parameter=binding.name, trigger_metadata=data
            )
        path = f"{container}/{name}"
        client = self._storage.blob_service(binding.connection).get_blob_client(container, name)
        try:
            downloader = await client.download_blob()
            content = await downloader.readall()
            properties = downloader.properties
        except ResourceNotFoundError:
            return None  # a missing input blob binds as None, as in the worker
        wanted = function.wants(binding.name, binding.data_type)
        if wanted is str:
            return content.decode("utf-8")
        if wanted is bytes:
            return content
        return func_blob.InputStream(
            data=content, name=path, uri=client.url, length=len(content), blob_properties=dict(properties)
        )

    async def _write_outputs(
        self, function: FunctionSpec, outs: Mapping[str, _Out], result: Any, data: Mapping[str, Any]
    ) -> None:
        # Plan every write first (values converted, paths resolved and checked), so a bad value or
        # path fails the invocation before anything is written. A storage failure part-way through
        # the writes can still leave some outputs written: the retry then writes them again.
        queue_writes: list[tuple[BindingSpec, list[str]]] = []
        blob_writes: list[tuple[BindingSpec, str, str, bytes]] = []
        for binding in function.outputs():
            value = result if binding.name == "$return" else outs[binding.name].get()
            if value is None or binding.type == "http":
                continue
            if binding.type == "queue":
                queue_writes.append((binding, [encode_message(m, self._encoding) for m in _queue_messages(value)]))
            else:
                assert binding.path is not None
                what = f"Function '{function.name}' binding '{binding.name}'"
                container, name = resolve_blob_path(binding.path, data, what)
                blob_writes.append((binding, container, name, _blob_bytes(value)))
        for binding, texts in queue_writes:
            assert binding.queue_name is not None
            for text in texts:
                await self._storage.send(binding.connection, binding.queue_name, text)
            self._wakeups.notify(self._storage.queue_key(binding.connection, binding.queue_name))
        for binding, container, name, payload in blob_writes:
            service = self._storage.blob_service(binding.connection)
            await ensure_container(service, container)
            await service.get_blob_client(container, name).upload_blob(payload, overwrite=True)
            self._wakeups.notify(blob_written_key(service.url, container))


class _RunningThreads:
    """Names of the worker threads running user code right now (idle pool threads are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, int] = {}

    def run(self, function: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        """Runs in the worker thread: thread-local state the worker sets there, then the function."""
        context = kwargs.get("context")
        if isinstance(context, _Context):
            context.thread_local_storage.invocation_id = context.invocation_id
        name = threading.current_thread().name
        with self._lock:
            self._names[name] = self._names.get(name, 0) + 1
        try:
            return function.user_function(**kwargs)
        finally:
            with self._lock:
                self._names[name] -= 1
                if not self._names[name]:
                    del self._names[name]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._names)


def _queue_messages(value: Any) -> list[str | bytes]:
    """The queue output converter's rules: str, bytes, QueueMessage, or a list of str/QueueMessage."""
    items = value if isinstance(value, list) else [value]
    messages: list[str | bytes] = []
    for item in items:
        if isinstance(item, str | bytes):
            messages.append(item)
        elif isinstance(item, func.QueueMessage):
            messages.append(item.get_body())
        else:
            raise TypeError(
                f"queue output accepts str, bytes, QueueMessage or a list of them, not {type(item).__name__}"
            )
    return messages


def _blob_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if hasattr(value, "read"):
        data = value.read()
        return data if isinstance(data, bytes) else str(data).encode("utf-8")
    raise TypeError(f"blob output accepts str, bytes or a readable stream, not {type(value).__name__}")
