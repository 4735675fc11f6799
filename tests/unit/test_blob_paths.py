"""Blob trigger pure logic: path patterns, receipt names, ETags, messages, scan candidates (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from amlpipe.host.blobpaths import (
    MIN_MARK,
    BlobTriggerMessage,
    BlobVersion,
    ReceiptState,
    blob_trigger_queue_name,
    completed_metadata,
    normalize_etag,
    parse_blob_path,
    quote_etag,
    receipt_blob_name,
    receipt_state,
    select_candidates,
)
from amlpipe.host.errors import HostConfigError
from amlpipe.host.storage import blob_written_key

# -- path patterns -------------------------------------------------------------------------------


def test_pattern_splits_container_and_blob_template() -> None:
    pattern = parse_blob_path("uploads/{name}")
    assert (pattern.container, pattern.blob_pattern, pattern.tokens) == ("uploads", "{name}", ("name",))


@pytest.mark.parametrize(
    ("blob", "name"),
    [
        ("report.csv", "report"),
        ("2024/01/report.csv", "2024/01/report"),  # {name} spans virtual directories
        ("report.csv.csv", "report.csv"),  # greedy, anchored at the end
        (".csv", ""),  # a token may capture nothing
    ],
)
def test_suffix_pattern_captures_name_without_extension(blob: str, name: str) -> None:
    assert parse_blob_path("uploads/{name}.csv").match("uploads", blob) == {"name": name}


@pytest.mark.parametrize("blob", ["report.txt", "report.csv.bak", "report.CSV", "dir/report.csvx"])
def test_suffix_pattern_rejects_other_names(blob: str) -> None:
    assert parse_blob_path("uploads/{name}.csv").match("uploads", blob) is None


def test_match_requires_the_same_container() -> None:
    pattern = parse_blob_path("uploads/{name}")
    assert pattern.match("uploads2", "a") is None
    assert pattern.match("upload", "a") is None


def test_literal_prefix_and_several_tokens() -> None:
    pattern = parse_blob_path("data/in/{stem}.{ext}")
    assert pattern.tokens == ("stem", "ext")
    assert pattern.match("data", "in/a/b.tar.gz") == {"stem": "a/b.tar", "ext": "gz"}
    assert pattern.match("data", "out/a.txt") is None
    assert pattern.match("data", "in/noext") is None


def test_first_token_is_greedy_across_slashes() -> None:
    assert parse_blob_path("c01/{a}/{b}").match("c01", "x/y/z") == {"a": "x/y", "b": "z"}


def test_fixed_path_matches_only_that_blob() -> None:
    pattern = parse_blob_path("config/settings.json")
    assert pattern.tokens == ()
    assert pattern.match("config", "settings.json") == {}
    assert pattern.match("config", "settings.json.bak") is None
    assert pattern.match("config", "xsettings.json") is None


def test_regex_characters_in_the_template_are_literal() -> None:
    pattern = parse_blob_path("c01/a+b (1)/{name}.[x]")
    assert pattern.match("c01", "a+b (1)/n.[x]") == {"name": "n"}
    assert pattern.match("c01", "aab (1)/n.x") is None


def test_doubled_braces_are_literal_braces() -> None:
    pattern = parse_blob_path("c01/{{lit}}/{name}")
    assert pattern.tokens == ("name",)
    assert pattern.match("c01", "{lit}/x") == {"name": "x"}


def test_matching_is_case_sensitive_and_spans_newlines() -> None:
    pattern = parse_blob_path("c01/In/{name}")
    assert pattern.match("c01", "in/x") is None
    assert pattern.match("c01", "In/a\nb") == {"name": "a\nb"}


@pytest.mark.parametrize("container", ["abc", "a-b-c", "x" * 63, "0day", "$root", "$web"])
def test_valid_container_names(container: str) -> None:
    assert parse_blob_path(f"{container}/{{name}}").container == container


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("uploads", "format 'container/blob'"),
        ("uploads/", "format 'container/blob'"),
        ("/name", "format 'container/blob'"),
        ("", "format 'container/blob'"),
        ("{c}/name", "cannot contain {resolve} tokens"),
        ("up{c}/name", "cannot contain {resolve} tokens"),
        ("Uploads/{name}", "not a valid container name"),
        ("ab/{name}", "not a valid container name"),
        ("a--b/{name}", "not a valid container name"),
        ("-ab/{name}", "not a valid container name"),
        ("u_p/{name}", "not a valid container name"),
        ("a\\b/{name}", "not a valid container name"),
        ("upl/{}", "not a valid token name"),
        ("upl/{1st}", "not a valid token name"),
        ("upl/{a-b}", "not a valid token name"),
        ("upl/{name}/{name}", "more than once"),
        ("upl/{name", "Unbalanced"),
        ("upl/name}", "Unbalanced"),
    ],
)
def test_invalid_paths_are_host_config_errors(path: str, reason: str) -> None:
    with pytest.raises(HostConfigError, match="invalid blob trigger path") as error:
        parse_blob_path(path, what="Function 'f'")
    assert reason in str(error.value)
    assert str(error.value).startswith("Function 'f': ")


# -- receipts, ETags, queue names ----------------------------------------------------------------


def test_receipt_name_puts_the_unquoted_etag_before_the_blob_name() -> None:
    name = receipt_blob_name("myhost", "Host.Functions.f", '"0x8DC1"', "uploads", "a/b.csv")
    assert name == "blobreceipts/myhost/Host.Functions.f/0x8DC1/uploads/a/b.csv"


def test_a_new_etag_is_a_new_receipt() -> None:
    first = receipt_blob_name("h", "Host.Functions.f", "0x1", "c01", "x")
    second = receipt_blob_name("h", "Host.Functions.f", "0x2", "c01", "x")
    assert first != second


@pytest.mark.parametrize(("raw", "normal"), [('"0x8D"', "0x8D"), ("0x8D", "0x8D"), ('W/"x"', 'W/"x"'), ('"', '"')])
def test_normalize_etag(raw: str, normal: str) -> None:
    assert normalize_etag(raw) == normal


def test_quote_etag_round_trips() -> None:
    assert quote_etag("0x8D") == '"0x8D"'
    assert quote_etag('"0x8D"') == '"0x8D"'
    assert normalize_etag(quote_etag("0x8D")) == "0x8D"


def test_receipt_state_is_the_presence_of_the_incomplete_key() -> None:
    assert receipt_state({"Incomplete": "Incomplete"}) is ReceiptState.INCOMPLETE
    assert receipt_state({"incomplete": ""}) is ReceiptState.INCOMPLETE
    assert receipt_state({}) is ReceiptState.COMPLETE
    assert receipt_state({"other": "x"}) is ReceiptState.COMPLETE


def test_completed_metadata_drops_only_the_marker() -> None:
    assert completed_metadata({"Incomplete": "Incomplete", "keep": "1"}) == {"keep": "1"}


def test_queue_name_uses_the_host_id() -> None:
    assert blob_trigger_queue_name("myhost") == "azure-webjobs-blobtrigger-myhost"


def test_blob_written_key_differs_from_queue_keys_and_ignores_trailing_slash() -> None:
    url = "http://127.0.0.1:10000/devstoreaccount1"
    assert blob_written_key(url, "c01") == blob_written_key(url + "/", "c01")
    assert blob_written_key(url, "c01") != (url, "c01")


# -- messages ------------------------------------------------------------------------------------


def test_message_json_has_the_real_host_fields() -> None:
    message = BlobTriggerMessage("Host.Functions.f", "BlockBlob", "c01", "a/b.txt", "0x8D")
    assert BlobTriggerMessage.from_json(message.to_json()) == message
    assert BlobTriggerMessage.from_json(message.to_json().encode()) == message
    assert list(json.loads(message.to_json())) == [
        "Type",
        "FunctionId",
        "BlobType",
        "ContainerName",
        "BlobName",
        "ETag",
    ]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"FunctionId": "f", "ContainerName": "c", "BlobName": "b"}', b'{"FunctionId": 1}', b"\xff"],
)
def test_invalid_messages_are_value_errors(body: bytes) -> None:
    with pytest.raises(ValueError):
        BlobTriggerMessage.from_json(body)


# -- scan candidates -----------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def _blob(name: str, seconds: int) -> BlobVersion:
    return BlobVersion(container="c01", name=name, etag=f"0x{seconds}", last_modified=T0 + timedelta(seconds=seconds))


def test_first_scan_takes_every_blob() -> None:
    blobs = [_blob("a", 0), _blob("b", 5)]
    candidates, mark = select_candidates(blobs, MIN_MARK)
    assert candidates == blobs and mark == T0 + timedelta(seconds=5)


def test_later_scans_take_blobs_at_or_after_the_mark() -> None:
    # Same-second blobs are kept (Azurite's LastModified has 1-second resolution); receipts dedupe.
    blobs = [_blob("old", 0), _blob("same-second", 5), _blob("new", 6)]
    candidates, mark = select_candidates(blobs, T0 + timedelta(seconds=5))
    assert [b.name for b in candidates] == ["same-second", "new"]
    assert mark == T0 + timedelta(seconds=6)


def test_empty_listing_keeps_the_mark() -> None:
    assert select_candidates([], T0) == ([], T0)
