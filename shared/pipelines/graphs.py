"""Pipeline graphs stored as content-addressed blobs: ``amlpipe-graphs/<sha256>.json``.

The id of a graph is the sha256 of its canonical JSON (keys sorted, no spaces), so storing the same
graph twice is one blob, and a stored graph never changes: published pipelines and runs refer to it
by id.
"""

from __future__ import annotations

import hashlib
import json

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared.errors import NotFoundError
from shared.graph import PipelineGraph, parse_graph
from shared.pipelines._storage import LazyContainer

CONTAINER = "amlpipe-graphs"


def canonical_json(graph: PipelineGraph) -> bytes:
    """The canonical bytes of ``graph``: its wire form with sorted keys and no spaces."""
    return json.dumps(graph.to_wire(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def graph_id(graph: PipelineGraph) -> str:
    """The content address of ``graph``: hex sha256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(graph)).hexdigest()


class GraphStore:
    """Content-addressed graph blobs."""

    def __init__(self, blobs: BlobServiceClient) -> None:
        self._container = LazyContainer(blobs, CONTAINER)

    def put_graph(self, graph: PipelineGraph) -> str:
        """Store ``graph`` (idempotent: an existing blob is the same bytes) and return its id."""
        data = canonical_json(graph)
        gid = hashlib.sha256(data).hexdigest()
        blob = self._container.client().get_blob_client(f"{gid}.json")
        try:
            blob.upload_blob(data, overwrite=False, content_settings=ContentSettings(content_type="application/json"))
        except ResourceExistsError:
            pass  # same address, same bytes
        return gid

    def get_graph(self, gid: str) -> PipelineGraph:
        """The graph stored under ``gid``.

        Raises:
            NotFoundError: no graph has that id.
        """
        blob = self._container.client().get_blob_client(f"{gid}.json")
        try:
            data = blob.download_blob().readall()
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"Graph {gid!r} does not exist.", target="GraphId") from exc
        return parse_graph(data)
