"""Names and ids in SDK/CLI URLs are quoted as one path segment, so none can reach another route."""

from __future__ import annotations

import pytest
import requests

from amlpipe._client import ServiceClient, api_path
from amlpipe.core.authentication import AbstractAuthentication
from amlpipe.exceptions import UserErrorException


class NoAuth(AbstractAuthentication):
    def get_authentication_header(self) -> dict[str, str]:
        return {}


def sent_url(path: str) -> str:
    """The URL requests would put on the wire for ``path`` (dot segments resolved, as urllib3 does)."""
    client = ServiceClient("http://service", NoAuth())
    url = requests.Request("GET", client.url(path)).prepare().url
    assert url is not None
    return url


@pytest.mark.parametrize(
    ("segments", "url"),
    [
        (("datastores", "../principals"), "http://service/api/datastores/..%2Fprincipals"),
        (("datasets", "a/b", "versions"), "http://service/api/datasets/a%2Fb/versions"),
        (("principals", "x?role=Owner#y"), "http://service/api/principals/x%3Frole%3DOwner%23y"),
        (("computetargets", "caf\u00e9 1"), "http://service/api/computetargets/caf%C3%A9%201"),
    ],
)
def test_a_name_stays_one_segment_on_the_wire(segments: tuple[str, ...], url: str) -> None:
    assert sent_url(api_path(*segments)) == url
    assert ServiceClient.path(*segments) == api_path(*segments)


def test_unquoted_names_would_have_reached_another_route() -> None:
    assert sent_url("datastores/../principals") == "http://service/api/principals"


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_dot_and_empty_names_are_refused(name: str) -> None:
    with pytest.raises(UserErrorException, match="not a valid name"):
        api_path("datastores", name)
