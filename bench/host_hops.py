"""Local host figures: HTTP latency and throughput, and the cost of one queue hop.

* HTTP: a function returning a constant; p50/p95 latency of sequential keep-alive requests, then
  requests/s with concurrent clients (client and host share this machine's cores).
* Queue hop: a chain of 50 queue-triggered functions, each forwarding via a queue output binding;
  mean milliseconds per hop (target ≤ 15 ms; a bare send+receive+delete on Azurite costs ~9 ms).

Everything runs on a private Azurite on free ports, started and stopped here.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

from amlpipe.host.azurite import Azurite
from amlpipe.host.testing import HostProcess, wait_for

APP = Path(__file__).resolve().parent / "apps" / "hops"
HOPS = 50


def http_latency(url: str, requests: int = 2000) -> dict[str, float]:
    with httpx.Client() as client:
        for _ in range(100):  # warm up
            client.get(url)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    samples.sort()
    return {
        "requests": requests,
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[int(len(samples) * 0.95)],
        "p99_ms": samples[int(len(samples) * 0.99)],
    }


async def _throughput(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.get(url)
            if response.status_code == 200:
                done += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "seconds": elapsed, "requests_per_s": done / elapsed}


def queue_hops(host: HostProcess, results: Path, runs: int = 5) -> dict[str, float]:
    per_hop = []
    for run in range(runs + 1):  # run 0 warms up (queue creation, first polls)
        httpx.post(f"{host.url}/api/chain", params={"run": str(run)}).raise_for_status()
        elapsed = wait_for(partial(_result, results, run), timeout=120, interval=0.01, what=f"chain run {run}")
        assert elapsed is not None
        if run > 0:
            per_hop.append(elapsed * 1000 / HOPS)
    return {
        "hops": HOPS,
        "runs": runs,
        "mean_ms_per_hop": statistics.mean(per_hop),
        "median_ms_per_hop": statistics.median(per_hop),
        "best_ms_per_hop": min(per_hop),
    }


def _result(path: Path, run: int) -> float | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["run"] == str(run):
            return float(entry["elapsed"])
    return None


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        results = folder / "hops.jsonl"
        with Azurite(folder / "azurite") as azurite:
            host = HostProcess(
                APP,
                env={
                    "AzureWebJobsStorage": azurite.connection_string,
                    "AzureFunctionsWebHost__hostid": "bench-hops",
                    "BENCH_RESULTS": str(results),
                },
            ).start()
            try:
                latency = http_latency(f"{host.url}/api/const")
                throughput = asyncio.run(_throughput(f"{host.url}/api/const", seconds=5, concurrency=16))
                hops = queue_hops(host, results)
            finally:
                host.stop()
    figures = {"http_latency": latency, "http_throughput": throughput, "queue_hop": hops}
    print("Local host benchmark (client, host and Azurite share this machine)")
    p50, p95, p99 = latency["p50_ms"], latency["p95_ms"], latency["p99_ms"]
    print(f"  HTTP constant:   p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms")
    rate, clients = throughput["requests_per_s"], throughput["concurrency"]
    print(f"  HTTP throughput: {rate:.0f} requests/s with {clients:.0f} clients")
    print(
        f"  Queue hop:       {hops['mean_ms_per_hop']:.1f} ms mean per hop "
        f"(median {hops['median_ms_per_hop']:.1f}, best {hops['best_ms_per_hop']:.1f}) over {hops['runs']}×{HOPS} hops"
    )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "host_hops.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
