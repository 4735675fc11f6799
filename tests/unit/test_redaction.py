"""Signatures never reach logs or step reasons: an Azure SAS's ``sig``, an S3 presigned URL's
signature and credential."""

from __future__ import annotations

from shared.redaction import redact, redacted_traceback


def test_a_sas_signature_is_redacted_and_the_rest_of_the_url_kept() -> None:
    url = "https://acct.blob.core.windows.net/c/a.csv?sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sp=r&sig=AbC%2Bd%3D"
    text = f"Max retries exceeded with url: {url} (Caused by NewConnectionError('refused'))"
    assert redact(text) == (
        "Max retries exceeded with url: https://acct.blob.core.windows.net/c/a.csv?sv=2024-08-04"
        "&se=2030-01-01T00%3A00%3A00Z&sp=r&sig=REDACTED (Caused by NewConnectionError('refused'))"
    )
    # First in the query, quoted inside a repr, or percent-encoded inside another URL.
    assert redact("'/c?sig=xyz'") == "'/c?sig=REDACTED'"
    assert redact("next=%2Fc%3Fsv%3D1%26sig%3Dxyz%26sp%3Dr") == "next=%2Fc%3Fsv%3D1%26sig%3DREDACTED%26sp%3Dr"


def test_a_presigned_s3_url_loses_its_signature_credential_and_token() -> None:
    url = (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1"
        "&X-Amz-Date=20240101T000000Z&X-Amz-Security-Token=tok&x-amz-signature=deadbeef"
    )
    assert redact(url) == (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED"
        "&X-Amz-Date=20240101T000000Z&X-Amz-Security-Token=REDACTED&x-amz-signature=REDACTED"
    )


def test_words_that_merely_end_in_sig_are_left_alone() -> None:
    assert redact("config=1&design=2&xsig=3 sig: none") == "config=1&design=2&xsig=3 sig: none"


def test_a_traceback_and_its_causes_are_redacted() -> None:
    try:
        try:
            raise OSError("GET /c?sp=r&sig=inner-secret failed")
        except OSError as inner:
            raise RuntimeError("connection to /c?sig=outer-secret lost") from inner
    except RuntimeError as exc:
        text = redacted_traceback(exc)
    assert "Traceback" in text and "RuntimeError" in text and "OSError" in text
    assert "inner-secret" not in text and "outer-secret" not in text
