"""Signatures kept out of logs and step reasons.

An error of the storage SDKs may quote the URL it failed on: a connection failure (azure-core's
``ServiceRequestError`` around urllib3's ``MaxRetryError``) names the blob URL with its SAS, and a
presigned S3 URL carries its signature and credential in the query. :func:`redact` blanks those
values wherever such text is logged or recorded::

    log.error("Download failed:\\n%s", redacted_traceback(exc))
    # ...?sv=2024-08-04&se=...&sp=r&sig=REDACTED
"""

from __future__ import annotations

import re
import traceback

__all__ = ["redact", "redacted_traceback"]

#: Query parameters whose value is a secret: an Azure SAS's signature, an S3 presigned URL's signature,
#: credential (the access key id) and session token. ``=`` may be percent-encoded (a URL quoted in a URL).
_SECRET = re.compile(
    r"(?i)(?:(?<![\w-])|(?<=%26)|(?<=%3F))"  # a parameter's start, plain or percent-encoded
    r"(sig|Signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)(=|%3D)"
    r"(?:(?!%26)[^&\s'\"<>),;])*"  # its value, up to the next parameter
)


def redact(text: str) -> str:
    """``text`` with the value of every ``sig=``, ``Signature=`` (SigV2), ``X-Amz-Signature=``,
    ``X-Amz-Credential=`` and ``X-Amz-Security-Token=`` replaced by ``REDACTED``."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", text)


def redacted_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` (with its chained causes), as ``logging`` would print it, redacted."""
    return redact("".join(traceback.format_exception(exc)).rstrip("\n"))
