"""Throughput of a DataTransferStep copy, Blob → S3, on loopback, beside a plain script doing the same.

A 200 MiB blob on a private Azurite is copied to a bucket on moto's S3 server (its own process, over
HTTP), three times each way, alternating:

* **amlpipe**: the executor's copy function (``shared.orchestration.transfer.copy_object``): ETag-guarded
  2 MiB ranged reads, a multipart upload of 5 MiB parts, two parts uploading while the next fills.
* **baseline**: what a user would write with the two SDKs: ``download_blob()`` (a stream) handed to
  boto3's ``upload_fileobj`` with its default ``TransferConfig`` (8 MiB parts, 10 threads).

Each copy runs in a fresh process that reports its time and its peak RSS growth (VmHWM − VmRSS before
the copy). Figures: median MB/s of each, amlpipe / baseline, and the peak RSS growth of each. Both ends
are emulators on this machine, sharing its cores with the copy: the figures compare the two copies,
they do not predict Azure → AWS throughput.

Run with ``python -m bench.data_transfer``; results go to ``bench/results/data_transfer.json``.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from amlpipe.host.azurite import Azurite

SIZE = 200 * 1024 * 1024
RUNS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "data_transfer.json"
ROOT = Path(__file__).resolve().parent.parent
KEY_ID, SECRET = "AKIAAMLPIPEBENCHKEY1", "amlpipe/bench+secret/0123456789abcdefghij"

# One copy, in a process of its own; prints {"seconds", "bytes", "rss_growth_mb"}.
COPY = """\
import json, sys, time
import boto3
from botocore.config import Config
from azure.storage.blob import BlobServiceClient
from shared.orchestration.objects import BlobObjects, S3Objects
from shared.orchestration.transfer import copy_object
from shared.registry.datastore_spec import S3DatastoreSpec
from shared.registry.s3 import BucketAccess, s3_client

a = json.loads(sys.argv[1])

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0

blobs = BlobServiceClient.from_connection_string(a["storage"])
if a["how"] == "amlpipe":
    spec = S3DatastoreSpec(a["bucket"], a["endpoint"], None, a["key"], a["secret"])
    source = BlobObjects.of_service("workspaceblobstore", blobs, a["container"])
    destination = S3Objects(BucketAccess("bench", a["bucket"], s3_client(spec)))
    found = source.get(a["blob"])
    def copy():
        return copy_object(source, a["blob"], found.etag, destination, a["key_name"], size=found.size,
                           metadata={"amlpipe_run_id": "bench"}).size
else:
    s3 = boto3.client("s3", endpoint_url=a["endpoint"], region_name="us-east-1", aws_access_key_id=a["key"],
                      aws_secret_access_key=a["secret"], config=Config(s3={"addressing_style": "path"}))
    container = blobs.get_container_client(a["container"])
    def copy():
        stream = container.download_blob(a["blob"])
        s3.upload_fileobj(stream, a["bucket"], a["key_name"])
        return stream.size
before = kib("VmRSS")
started = time.perf_counter()
copied = copy()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "bytes": copied, "rss_growth_mb": (kib("VmHWM") - before) / 1024}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _copy(how: str, args: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", COPY, json.dumps({**args, "how": how})],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {how} copy failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["bytes"] != SIZE:
        raise RuntimeError(f"the {how} copy moved {figures['bytes']} bytes, not {SIZE}")
    return figures


def measure() -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # waiting for a server process to listen, not a test
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET, config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip
        s3.create_bucket(Bucket="bench-transfer")
        with tempfile.TemporaryDirectory() as scratch, Azurite(Path(scratch) / "azurite") as azurite:
            blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
            container = blobs.get_container_client("bench-transfer")
            container.create_container()
            container.upload_blob("big.bin", os.urandom(SIZE), max_concurrency=4)
            args = {
                "storage": azurite.connection_string,
                "container": "bench-transfer",
                "blob": "big.bin",
                "bucket": "bench-transfer",
                "endpoint": endpoint,
                "key": KEY_ID,
                "secret": SECRET,
            }
            runs: dict[str, list[dict[str, Any]]] = {"amlpipe": [], "baseline": []}
            for i in range(RUNS):
                for how in ("amlpipe", "baseline") if i % 2 == 0 else ("baseline", "amlpipe"):
                    key_name = f"{how}-{i}.bin"
                    runs[how].append(_copy(how, {**args, "key_name": key_name}))
                    s3.delete_object(Bucket="bench-transfer", Key=key_name)  # moto keeps objects in memory
        s3.close()
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    mb = SIZE / 1e6  # MB/s in decimal megabytes, as network figures go
    speed = {how: statistics.median(mb / r["seconds"] for r in found) for how, found in runs.items()}
    rss = {how: max(r["rss_growth_mb"] for r in found) for how, found in runs.items()}
    return {
        "size_mib": SIZE // (1024 * 1024),
        "runs": RUNS,
        "amlpipe_mb_per_s": round(speed["amlpipe"], 1),
        "baseline_mb_per_s": round(speed["baseline"], 1),
        "ratio": round(speed["amlpipe"] / speed["baseline"], 2),
        "amlpipe_peak_rss_growth_mb": round(rss["amlpipe"], 1),
        "baseline_peak_rss_growth_mb": round(rss["baseline"], 1),
        "seconds": {how: [round(r["seconds"], 2) for r in found] for how, found in runs.items()},
    }


def main() -> None:
    figures = measure()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2))
    print(
        f"Data transfer, {figures['size_mib']} MiB Blob → S3 on loopback (median of {figures['runs']}): amlpipe "
        f"{figures['amlpipe_mb_per_s']} MB/s (peak RSS +{figures['amlpipe_peak_rss_growth_mb']} MB), baseline "
        f"boto3 upload_fileobj {figures['baseline_mb_per_s']} MB/s (+{figures['baseline_peak_rss_growth_mb']} MB);"
        f" ratio {figures['ratio']}"
    )


if __name__ == "__main__":
    main()
