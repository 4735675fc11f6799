"""moto's S3 server for the tests: one per session, on a free loopback port, used over HTTP with boto3.

No in-process mock decorators: the engine, and the app's host processes, talk to it as to any
S3-compatible service. moto accepts any key pair until :meth:`MotoS3.enforce_auth` turns its IAM
checks on. Its state belongs to the whole test process, so tests name buckets with :meth:`MotoS3.bucket_name`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests

#: moto takes any key pair while auth is off; these only make the requests well-formed.
TEST_KEY_ID = "AKIAAMLPIPETESTKEY01"
TEST_SECRET = "amlpipe/test+secret/0123456789abcdefghij"


@dataclass(frozen=True)
class MotoS3:
    """The session's moto S3 server."""

    endpoint_url: str
    region: str = "us-east-1"

    def client(self, access_key_id: str = TEST_KEY_ID, secret_access_key: str = TEST_SECRET) -> Any:
        """A boto3 S3 client of the server (path-style addressing, as amlpipe uses for custom endpoints)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )

    @staticmethod
    def bucket_name(prefix: str = "amlpipe") -> str:
        """A bucket name no other test uses (not created)."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def create_bucket(self, prefix: str = "amlpipe") -> str:
        """A new, empty bucket's name."""
        name = self.bucket_name(prefix)
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def bucket_exists(self, name: str) -> bool:
        client = self.client()
        try:
            return name in {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        finally:
            client.close()

    @contextmanager
    def enforce_auth(self) -> Iterator[tuple[str, str]]:
        """Within the block moto checks every request's signature against its IAM users; yields the
        key pair of a user allowed ``s3:*`` (any other pair is refused). Restored when the block ends."""
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=TEST_KEY_ID,
            aws_secret_access_key=TEST_SECRET,
        )
        user = f"amlpipe-{uuid.uuid4().hex[:8]}"
        try:
            iam.create_user(UserName=user)
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
        finally:
            iam.close()
        # moto's switch (process-wide): authenticate every request from now on (after 0 free ones).
        self._reset_auth("0")
        try:
            yield key["AccessKeyId"], key["SecretAccessKey"]
        finally:
            self._reset_auth("inf")

    def _reset_auth(self, free_requests: str) -> None:
        response = requests.post(f"{self.endpoint_url}/moto-api/reset-auth", data=free_requests.encode(), timeout=10)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server on 127.0.0.1 and a port the OS picks (so never one in use), stopped at the end."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoS3(f"http://{host}:{port}")
    finally:
        server.stop()
