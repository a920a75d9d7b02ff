"""HTTP load generator: the REST calls the mlflow client makes, from N client processes.

Each client is its own process (the GIL of one generator process would cap 16 clients) with
one keep-alive connection (http.client), so only the first request of a burst pays the TCP
and TLS handshake, and that request is untimed. All clients of a burst start at the same
instant and stop issuing requests at the same deadline.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import ssl
import time
from base64 import b64encode
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

OPS = ("log_batch", "get_run", "search_runs", "artifact_upload", "artifact_download")
METRICS_PER_BATCH = 100


@dataclass(frozen=True)
class Endpoint:
    """Where a case sends its requests, and as whom."""

    url: str
    user: str | None = None
    password: str | None = None

    def headers(self) -> dict[str, str]:
        if self.user is None:
            return {}
        token = b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def connect(self, timeout: float = 120) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the bench's own self-signed certificate
            return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


@dataclass
class Fixture:
    """The data a case's clients work on: one run per client, one artifact to download."""

    experiment_id: str
    run_ids: list[str]
    download_path: str
    artifact_bytes: int
    extra: dict = field(default_factory=dict)


class RequestFailed(RuntimeError):
    pass


def call(conn, endpoint: Endpoint, method: str, path: str, body=None, content_type="application/json") -> bytes:
    """One request on a keep-alive connection; reconnects once if the server closed it."""
    headers = endpoint.headers()
    if body is not None:
        headers["Content-Type"] = content_type
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = _drain(response)
            break
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            if attempt == 2:
                raise
    if response.status != 200:
        raise RequestFailed(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
    return data


def _drain(response) -> bytes:
    """The body; big bodies (artifact downloads) are read in chunks and dropped."""
    length = int(response.getheader("Content-Length") or 0)
    if response.getheader("Content-Type", "").startswith("application/json") or 0 < length < 1 << 20:
        return response.read()
    while response.read(1 << 20):
        pass
    return b""


# --------------------------------------------------------------------------- the calls


def _artifact_path(fixture: Fixture, run_id: str, name: str) -> str:
    return f"/api/2.0/mlflow-artifacts/artifacts/{fixture.experiment_id}/{run_id}/artifacts/bench/{name}"


_PAYLOAD: dict[int, bytes] = {}


def _payload(size: int) -> bytes:
    if size not in _PAYLOAD:
        _PAYLOAD[size] = os.urandom(size)
    return _PAYLOAD[size]


def do_op(op: str, conn, endpoint: Endpoint, fixture: Fixture, client: int, step: int) -> None:
    run_id = fixture.run_ids[client % len(fixture.run_ids)]
    if op == "log_batch":
        now = int(time.time() * 1000)
        metrics = [
            {"key": f"m{k}", "value": step + k / 1000, "timestamp": now, "step": step} for k in range(METRICS_PER_BATCH)
        ]
        call(conn, endpoint, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": metrics})
    elif op == "get_run":
        call(conn, endpoint, "GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}")
    elif op == "search_runs":
        query = {"experiment_ids": [fixture.experiment_id], "max_results": 100}
        call(conn, endpoint, "POST", "/api/2.0/mlflow/runs/search", query)
    elif op == "artifact_upload":
        path = _artifact_path(fixture, run_id, f"upload-{client}.bin")
        call(conn, endpoint, "PUT", path, _payload(fixture.artifact_bytes), "application/octet-stream")
    elif op == "artifact_download":
        call(conn, endpoint, "GET", fixture.download_path)
    else:
        raise ValueError(op)


# --------------------------------------------------------------------------- set-up


def prepare(endpoint: Endpoint, clients: int, artifact_bytes: int, tag: str) -> Fixture:
    """Create an experiment with one run per client (each already holding a batch) and an artifact."""
    conn = endpoint.connect()
    try:
        name = f"bench-{tag}-{os.getpid()}-{time.time_ns()}"
        exp = json.loads(call(conn, endpoint, "POST", "/api/2.0/mlflow/experiments/create", {"name": name}))
        experiment_id = exp["experiment_id"]
        run_ids = []
        for i in range(clients + 1):
            run = json.loads(
                call(
                    conn,
                    endpoint,
                    "POST",
                    "/api/2.0/mlflow/runs/create",
                    {"experiment_id": experiment_id, "run_name": f"client-{i}"},
                )
            )
            run_ids.append(run["run"]["info"]["run_id"])
        fixture = Fixture(experiment_id, run_ids[:clients], "", artifact_bytes)
        for client in range(clients):
            do_op("log_batch", conn, endpoint, fixture, client, 0)
        fixture.download_path = _artifact_path(fixture, run_ids[-1], "download.bin")
        call(conn, endpoint, "PUT", fixture.download_path, _payload(artifact_bytes), "application/octet-stream")
        return fixture
    finally:
        conn.close()


# --------------------------------------------------------------------------- bursts


_SYNC: dict = {}


def _init_client(ready, go, window) -> None:
    _SYNC.update(ready=ready, go=go, window=window)


def _client(endpoint: Endpoint, fixture: Fixture, ops: tuple[str, ...], client: int) -> dict:
    conn = endpoint.connect()
    try:
        do_op("get_run", conn, endpoint, fixture, client, 0)  # untimed: connection, TLS handshake, auth
        with _SYNC["ready"].get_lock():
            _SYNC["ready"].value += 1
        _SYNC["go"].wait()
        start_at, stop_at = _SYNC["window"][:]
        time.sleep(max(0.0, start_at - time.monotonic()))
        latencies, errors, step = [], [], 1
        cpu0 = time.process_time()
        while time.monotonic() < stop_at:
            op = ops[step % len(ops)]
            t0 = time.perf_counter()
            try:
                do_op(op, conn, endpoint, fixture, client, step)
                latencies.append((op, time.perf_counter() - t0))
            except (RequestFailed, OSError, http.client.HTTPException) as exc:
                errors.append(str(exc)[:200])
                conn.close()
            step += 1
        return {"latencies": latencies, "errors": errors, "end": time.monotonic(), "cpu": time.process_time() - cpu0}
    finally:
        conn.close()


class LoadGenerator:
    """A pool of client processes, forked once and reused for every burst.

    A burst starts when every client has connected and made one untimed request, so the
    warm-up never overlaps the measured window.
    """

    def __init__(self, max_clients: int):
        ctx = multiprocessing.get_context("fork")
        self.ready, self.go, self.window = ctx.Value("i", 0), ctx.Event(), ctx.Array("d", 2)
        self.pool = ProcessPoolExecutor(
            max_workers=max_clients,
            mp_context=ctx,
            initializer=_init_client,
            initargs=(self.ready, self.go, self.window),
        )
        # Fork every worker now, before any burst, so no burst pays for process start-up.
        list(self.pool.map(time.sleep, [0.05] * max_clients))

    def burst(
        self, endpoint: Endpoint, fixture: Fixture, ops: tuple[str, ...], clients: int, duration: float, sample=None
    ):
        """`clients` clients issue `ops` (in turn) back to back for `duration` seconds.

        `sample` (optional, no arguments) is called at the start instant and again when every
        client is done; both values are returned (e.g. CPU seconds of the server processes).
        """
        self.ready.value = 0
        self.go.clear()
        futures = [self.pool.submit(_client, endpoint, fixture, ops, c) for c in range(clients)]
        while self.ready.value < clients:
            if any(f.done() for f in futures):  # a client failed before the start: raise its error
                next(f for f in futures if f.done()).result()
            time.sleep(0.005)
        start_at = time.monotonic() + 0.05
        self.window[:] = [start_at, start_at + duration]
        self.go.set()
        time.sleep(max(0.0, start_at - time.monotonic()))
        before = sample() if sample is not None else {}
        parts = [f.result() for f in futures]
        after = sample() if sample is not None else {}
        return {
            "wall_s": max(p["end"] for p in parts) - start_at,
            "latencies": [lat for p in parts for lat in p["latencies"]],
            "errors": [e for p in parts for e in p["errors"]],
            "client_cpu_s": sum(p["cpu"] for p in parts),
            "sample_before": before,
            "sample_after": after,
        }

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
