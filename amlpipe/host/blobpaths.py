"""Blob trigger logic without I/O: path patterns, receipt names, trigger messages, scan candidates.

See ``amlpipe.host.blobs`` for the listener that uses these, and why each rule is what it is.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from azure.storage.blob import BlobProperties

from amlpipe.host.errors import HostConfigError

#: Shared poison queue of all blob triggers (``HostQueueNames.BlobTriggerPoisonQueue``).
POISON_QUEUE = "webjobs-blobtrigger-poison"
#: Folder of ``azure-webjobs-hosts`` that holds the receipts (``HostDirectoryNames.BlobReceipts``).
RECEIPTS_DIRECTORY = "blobreceipts"
#: Receipt lease while enqueueing (``BlobReceiptManager.LeasePeriod``).
RECEIPT_LEASE_SECONDS = 30
#: Metadata key of an incomplete receipt; a receipt without it is complete (``BlobReceipt``).
INCOMPLETE_KEY = "Incomplete"
#: The high-water mark before the first scan (``DateTime.MinValue``).
MIN_MARK = datetime.min.replace(tzinfo=UTC)

_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_SPECIAL_CONTAINERS = frozenset({"$root", "$web", "$logs"})
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
_TOKEN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BlobPathPattern:
    """A blob trigger ``path``: a literal container and a blob-name template with ``{tokens}``."""

    path: str
    container: str
    blob_pattern: str
    tokens: tuple[str, ...]
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def match(self, container: str, blob_name: str) -> dict[str, str] | None:
        """The captured tokens when ``container/blob_name`` matches, else ``None``."""
        if container != self.container:
            return None
        found = self.regex.fullmatch(blob_name)
        return None if found is None else {name: found.group(name) for name in self.tokens}


def parse_blob_path(path: str, *, what: str = "blob trigger") -> BlobPathPattern:
    """Parse ``container/pattern`` as the real host does (``BlobPathSource.Create``).

    Each ``{token}`` captures ``.*`` and the pattern is anchored, so ``{name}`` may contain ``/``
    and ``in/{name}.csv`` captures the name without its extension. ``{{``/``}}`` are literal braces.

    Raises:
        HostConfigError: the path is not ``container/blob`` with a literal, valid container name,
            or a token is malformed or repeated.
    """

    def invalid(reason: str) -> HostConfigError:
        return HostConfigError(f"{what}: invalid blob trigger path '{path}'. {reason}")

    container, slash, blob_pattern = path.partition("/")
    if not slash or not container or not blob_pattern:
        raise invalid("Paths must be in the format 'container/blob', e.g. 'uploads/{name}'.")
    if "{" in container or "}" in container:
        raise invalid("Container paths cannot contain {resolve} tokens.")
    if container not in _SPECIAL_CONTAINERS and not _CONTAINER_NAME.match(container):
        raise invalid(
            f"'{container}' is not a valid container name (3-63 lower-case letters, digits and single hyphens)."
        )
    regex, tokens = _compile_template(blob_pattern, invalid)
    return BlobPathPattern(path=path, container=container, blob_pattern=blob_pattern, tokens=tokens, regex=regex)


def _compile_template(
    template: str, invalid: Callable[[str], HostConfigError]
) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """Template → anchored regex with one ``(?P<token>.*)`` group per token (``BindingTemplateToken``)."""
    parts: list[str] = []
    tokens: list[str] = []
    for piece in _TEMPLATE_PART.finditer(template):
        text, token = piece.group(0), piece.group(1)
        if text in ("{{", "}}"):
            parts.append(re.escape(text[0]))
        elif token is not None:
            if not _TOKEN_NAME.match(token):
                raise invalid(f"'{{{token}}}' is not a valid token name.")
            if token in tokens:
                raise invalid(f"Token '{{{token}}}' appears more than once.")
            tokens.append(token)
            parts.append(f"(?P<{token}>.*)")
        elif text in ("{", "}"):
            raise invalid("Unbalanced '{' or '}' (use '{{' or '}}' for a literal brace).")
        else:
            parts.append(re.escape(text))
    return re.compile("".join(parts), re.DOTALL), tuple(tokens)


def blob_trigger_queue_name(host_id: str) -> str:
    """The host's shared blob trigger queue (``HostQueueNames.GetHostBlobTriggerQueueName``)."""
    return f"azure-webjobs-blobtrigger-{host_id}"


def normalize_etag(etag: str) -> str:
    """The ETag as the v5 extension prints it: without the HTTP quotes (``"0x8D…"`` → ``0x8D…``)."""
    return etag[1:-1] if len(etag) >= 2 and etag[0] == etag[-1] == '"' else etag


def quote_etag(etag: str) -> str:
    """The ETag as an ``If-Match`` header value."""
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def receipt_blob_name(host_id: str, function_id: str, etag: str, container: str, blob_name: str) -> str:
    """Receipt path inside ``azure-webjobs-hosts``.

    The ETag comes before the blob name because blob names can contain ``/``: a new ETag is a new
    receipt, so a changed blob triggers again (``BlobReceiptManager.CreateReference``).
    """
    return f"{RECEIPTS_DIRECTORY}/{host_id}/{function_id}/{normalize_etag(etag)}/{container}/{blob_name}"


class ReceiptState(Enum):
    """What a receipt blob says about one blob version for one function."""

    INCOMPLETE = "incomplete"
    COMPLETE = "complete"


def receipt_state(metadata: Mapping[str, str]) -> ReceiptState:
    """The presence of the ``Incomplete`` key is what matters, not its value (``BlobReceipt``)."""
    incomplete = any(key.lower() == INCOMPLETE_KEY.lower() for key in metadata)
    return ReceiptState.INCOMPLETE if incomplete else ReceiptState.COMPLETE


def completed_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Receipt metadata with the ``Incomplete`` marker removed (other keys kept)."""
    return {k: v for k, v in metadata.items() if k.lower() != INCOMPLETE_KEY.lower()}


@dataclass(frozen=True)
class BlobTriggerMessage:
    """The shared-queue message: function id + blob path + ETag (``BlobTriggerMessage``)."""

    function_id: str
    blob_type: str
    container_name: str
    blob_name: str
    etag: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "Type": "BlobTrigger",
                "FunctionId": self.function_id,
                "BlobType": self.blob_type,
                "ContainerName": self.container_name,
                "BlobName": self.blob_name,
                "ETag": self.etag,
            }
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> BlobTriggerMessage:
        """Parse a message body.

        Raises:
            ValueError: not JSON, or a required field is missing or not a string.
        """
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        fields = {}
        for key in ("FunctionId", "ContainerName", "BlobName", "ETag"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"'{key}' is missing")
            fields[key] = value
        return cls(
            function_id=fields["FunctionId"],
            blob_type=str(data.get("BlobType") or "BlockBlob"),
            container_name=fields["ContainerName"],
            blob_name=fields["BlobName"],
            etag=fields["ETag"],
        )


@dataclass(frozen=True)
class BlobVersion:
    """One blob as a scan saw it."""

    container: str
    name: str
    etag: str  # unquoted
    last_modified: datetime
    blob_type: str = "BlockBlob"


def select_candidates(blobs: Iterable[BlobVersion], mark: datetime) -> tuple[list[BlobVersion], datetime]:
    """Blobs modified at or after ``mark``, and the new mark (the newest ``LastModified`` seen).

    ``>=`` rather than the real host's ``>``: Azurite's ``LastModified`` has 1-second resolution,
    so a blob written in the same second as the previous scan's newest blob would be missed.
    """
    candidates: list[BlobVersion] = []
    newest = mark
    for blob in blobs:
        newest = max(newest, blob.last_modified)
        if blob.last_modified >= mark:
            candidates.append(blob)
    return candidates, newest


def blob_properties_data(properties: BlobProperties) -> dict[str, Any]:
    """Trigger metadata ``Properties``: the keys the Python library reads, JSON-friendly."""
    settings = properties.content_settings
    md5 = settings.content_md5
    return {
        "ContentLength": properties.size,
        "ContentType": settings.content_type,
        "ContentEncoding": settings.content_encoding,
        "ContentMD5": None if md5 is None else base64.b64encode(bytes(md5)).decode("ascii"),
        "ETag": normalize_etag(properties.etag),
        "LastModified": properties.last_modified.isoformat() if properties.last_modified else None,
        "CreatedOn": properties.creation_time.isoformat() if properties.creation_time else None,
        "BlobType": blob_type_name(properties.blob_type),
    }


def blob_type_name(value: Any) -> str:
    # The message uses the track-1 names ("BlockBlob"), which the Python enum values already are.
    return str(getattr(value, "value", value) or "BlockBlob")
