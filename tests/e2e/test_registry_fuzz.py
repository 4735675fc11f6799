"""Fuzzing the registry routes on the real app: whatever the name, query, ETag or body, never a 5xx.

Runs on the session's one pipelines host; every name it can write starts with ``fz`` or is random text,
so the pipelines tests sharing that host never see its datastores or compute targets by accident.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import FUZZ, PipelinesApp

pytestmark = pytest.mark.integration


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(["fz-cluster", "fz_store", "fz_data", "local", "workspaceblobstore", ".", "..", "%2e%2e"]) | (
    st.text(max_size=24)
)
# Header values must be printable ASCII without leading spaces, or the client refuses to send them.
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.lstrip)
etags = st.sampled_from(["*", "garbage", "W/\"datetime'2020-01-01T00%3A00%3A00Z'\"", '""', "W/"]) | header_text

# Digits in other scripts ("²", "٣") pass str.isdigit() but not int(): the case that used to be a 500.
query_values = st.sampled_from(["latest", "1", "²", "٣", "0", "-1", "1e3", "99999999999"]) | st.text(max_size=12)

REGISTRY_ROUTES = [
    ("GET", "datastores/{}"),
    ("PUT", "datastores/{}"),
    ("DELETE", "datastores/{}"),
    ("POST", "datastores/{}/sas"),
    ("GET", "datasets/{}"),
    ("DELETE", "datasets/{}"),
    ("GET", "datasets/{}/versions"),
    ("POST", "datasets/{}/versions"),
    ("GET", "computetargets/{}"),
    ("PUT", "computetargets/{}"),
    ("PATCH", "computetargets/{}"),
    ("DELETE", "computetargets/{}"),
]
datastore_bodies = st.fixed_dictionaries(
    {},
    optional={
        "containerName": st.sampled_from(["fz-container", ""]) | json_values,
        "accountName": st.sampled_from(["devstoreaccount1", "Bad_Name"]) | json_values,
        "accountKey": json_values,
        "sasToken": json_values,
        "endpoint": st.sampled_from(["http://127.0.0.1:1", "https://169.254.169.254", "ftp://x"]) | json_values,
        "createIfNotExists": json_values,
        "overwrite": json_values,
        "permission": st.sampled_from(["read", "write", "admin"]) | json_values,
    },
)
s3_datastore_bodies = st.fixed_dictionaries(
    {
        "datastoreType": st.just("AmazonS3"),
        # Always an endpoint that answers at once (refused, or invalid): without one the app would call AWS.
        "endpointUrl": st.sampled_from(["http://127.0.0.1:1", "https://169.254.169.254", "https://10.0.0.1", "x", ""]),
    },
    optional={
        "bucketName": st.sampled_from(["fz-bucket", "ab", "192.168.1.1", "Bad_Name"]) | json_values,
        "region": st.sampled_from(["us-east-1", "auto", "EU-WEST-1"]) | json_values,
        "accessKeyId": st.sampled_from(["AKIAFUZZFUZZFUZZ0000"]) | json_values,
        "secretAccessKey": st.sampled_from(["fuzz/secret"]) | json_values,
        "createIfNotExists": json_values,
        "overwrite": json_values,
        "containerName": json_values,
    },
)
dataset_bodies = st.fixed_dictionaries(
    {},
    optional={
        "definition": st.fixed_dictionaries(
            {},
            optional={
                "kind": st.sampled_from(["File", "Tabular"]) | json_values,
                "paths": st.lists(
                    st.fixed_dictionaries(
                        {}, optional={"datastore": names | json_values, "path": st.text(max_size=12) | json_values}
                    ),
                    max_size=2,
                )
                | json_values,
            },
        )
        | json_values,
        "description": json_values,
        "tags": json_values,
        "createNewVersion": json_values,
    },
)
compute_bodies = st.fixed_dictionaries(
    {},
    optional={
        "vmSize": st.text(max_size=80) | json_values,
        "minNodes": st.integers(-2, 2**40) | json_values,
        "maxNodes": st.integers(-2, 2**40) | json_values,
        "idleSecondsBeforeScaledown": st.integers(-2, 2**40) | json_values,
        "etag": etags | json_values,
    },
)
bodies = st.none() | datastore_bodies | s3_datastore_bodies | dataset_bodies | compute_bodies | json_values


@pytest.fixture(scope="module")
def owner(pipelines_app: PipelinesApp) -> dict[str, str]:
    headers = pipelines_app.headers()
    # A target to PATCH, so ETag cases reach storage rather than stopping at a 404.
    created = requests.put(
        f"{pipelines_app.url}/api/computetargets/fz-cluster", json={"maxNodes": 1}, headers=headers, timeout=30
    )
    assert created.status_code in (200, 201), created.text
    return headers


def _url(app: PipelinesApp, template: str, name: str) -> str:
    return f"{app.url}/api/{template.format(quote(name, safe=''))}"


def test_fuzzed_registry_requests_never_get_a_5xx(pipelines_app: PipelinesApp, owner: dict[str, str]) -> None:
    @FUZZ
    @given(route=st.sampled_from(REGISTRY_ROUTES), name=names, body=bodies, if_match=st.none() | etags)
    # Cases that were 500s, always run first (explicit examples precede generated ones).
    @example(route=("PATCH", "computetargets/{}"), name="fz-cluster", body={"etag": "garbage"}, if_match=None)
    @example(route=("PATCH", "computetargets/{}"), name="fz-cluster", body={"maxNodes": 2}, if_match="garbage")
    # An S3 registration reaches the bucket check (a refused connection) and must still be a 4xx.
    @example(
        route=("PUT", "datastores/{}"),
        name="fz_store",
        body={"datastoreType": "AmazonS3", "endpointUrl": "http://127.0.0.1:1", "bucketName": "fz-bucket"},
        if_match=None,
    )
    def check(route: tuple[str, str], name: str, body: Any, if_match: str | None) -> None:
        method, template = route
        headers = dict(owner) if if_match is None else {**owner, "If-Match": if_match}
        response = requests.request(method, _url(pipelines_app, template, name), json=body, headers=headers, timeout=30)
        assert response.status_code < 500, (method, name, body, if_match, response.text)

    check()


def test_fuzzed_query_parameters_never_get_a_5xx(pipelines_app: PipelinesApp, owner: dict[str, str]) -> None:
    @FUZZ
    @given(
        template=st.sampled_from(["datasets", "datasets/{}", "datastores", "computetargets", "datastores/{}"]),
        name=names,
        params=st.fixed_dictionaries({"version": query_values})
        | st.dictionaries(
            st.sampled_from(["version", "Version", "api-version", "$top", "x"]) | st.text(max_size=6),
            query_values,
            max_size=3,
        ),
    )
    @example(template="datasets/{}", name="fz_data", params={"version": "²"})
    @example(template="datasets/{}", name="fz_data", params={"version": "٣"})
    def check(template: str, name: str, params: dict[str, str]) -> None:
        response = requests.get(_url(pipelines_app, template, name), params=params, headers=owner, timeout=30)
        assert response.status_code < 500, (template, name, params, response.text)

    check()


def test_deeply_nested_bodies_are_a_400_not_a_5xx(pipelines_app: PipelinesApp, owner: dict[str, str]) -> None:
    @settings(FUZZ, max_examples=25)
    @given(
        depth=st.sampled_from([65, 1_000, 200_000]) | st.integers(1, 5_000),
        opener=st.sampled_from(["[", '{"a":']),
        route=st.sampled_from([r for r in REGISTRY_ROUTES if r[0] in ("PUT", "POST", "PATCH")]),
    )
    def check(depth: int, opener: str, route: tuple[str, str]) -> None:
        closer = "]" if opener == "[" else "}"
        data = (opener * depth + "1" + closer * depth).encode()
        method, template = route
        headers = {**owner, "Content-Type": "application/json"}
        response = requests.request(
            method, _url(pipelines_app, template, "fz-deep"), data=data, headers=headers, timeout=30
        )
        assert response.status_code < 500, (depth, opener, route, response.text[:200])
        if depth > 64:
            assert response.status_code in (400, 413), (depth, opener, route, response.text[:200])

    check()
