"""Raw REST probes and a metric load for the faults scenario (runs inside the test host).

    faults_client.py call METHOD PATH [JSON]     one API call; status, seconds, body
    faults_client.py run NAME                    an experiment NAME with one run; ids
    faults_client.py put ARTIFACT_URI NAME MB    upload MB of NAME-seeded bytes as NAME
    faults_client.py get ARTIFACT_URI NAME MB    download NAME; does it match what put sent?
    faults_client.py load CLIENTS SECONDS        CLIENTS threads log metrics for SECONDS

Every request goes through nginx (the URL and basic auth user come from the 0600 file
/root/faults-client.json, so no password is ever on a command line), with no client
retries: a 5xx or a timeout is reported as it happened, never papered over.
Prints one JSON line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import time
from collections import Counter

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

with open("/root/faults-client.json") as handle:
    CONFIG = json.load(handle)
TIMEOUT = CONFIG.get("timeout", 120)


def _session() -> requests.Session:
    session = requests.Session()
    session.auth = (CONFIG["user"], CONFIG["password"])
    session.verify = False
    return session


def _request(session: requests.Session, method: str, path: str, **kwargs) -> dict:
    started = time.monotonic()
    try:
        resp = session.request(method, CONFIG["url"] + path, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        return {"status": None, "seconds": time.monotonic() - started, "error": type(exc).__name__}
    result = {
        "status": resp.status_code,
        "seconds": time.monotonic() - started,
        "body": resp.text[:2000],
        "headers": dict(resp.headers),
    }
    if resp.headers.get("Content-Type", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            result["json"] = resp.json()
    return result


def _payload(name: str, megabytes: int) -> bytes:
    block = b"".join(hashlib.sha256(f"{name}-{i}".encode()).digest() for i in range(2048))
    size = megabytes * 1024 * 1024
    return (block * (size // len(block) + 1))[:size]


def _artifact_path(artifact_uri: str, name: str) -> str:
    # mlflow-artifacts:/<experiment>/<run>/artifacts -> the proxied artifact API
    return "/api/2.0/mlflow-artifacts/artifacts/" + artifact_uri.split(":", 1)[1].lstrip("/") + "/" + name


def call(method: str, path: str, body: str = "") -> dict:
    return _request(_session(), method, path, json=json.loads(body) if body else None)


def run(name: str) -> dict:
    session = _session()
    created = _request(session, "POST", "/api/2.0/mlflow/experiments/create", json={"name": name})
    experiment_id = created["json"]["experiment_id"]
    started = _request(session, "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id})
    info = started["json"]["run"]["info"]
    return {"experiment_id": experiment_id, "run_id": info["run_id"], "artifact_uri": info["artifact_uri"]}


def put(artifact_uri: str, name: str, megabytes: str) -> dict:
    return _request(_session(), "PUT", _artifact_path(artifact_uri, name), data=_payload(name, int(megabytes)))


def get(artifact_uri: str, name: str, megabytes: str) -> dict:
    session = _session()
    started = time.monotonic()
    try:
        resp = session.get(CONFIG["url"] + _artifact_path(artifact_uri, name), timeout=TIMEOUT)
    except requests.RequestException as exc:
        return {"status": None, "seconds": time.monotonic() - started, "error": type(exc).__name__}
    expected = hashlib.sha256(_payload(name, int(megabytes))).hexdigest()
    return {
        "status": resp.status_code,
        "seconds": time.monotonic() - started,
        "bytes": len(resp.content),
        "intact": hashlib.sha256(resp.content).hexdigest() == expected,
    }


def load(clients: str, seconds: str) -> dict:
    deadline = time.monotonic() + float(seconds)
    statuses: Counter = Counter()
    logged: dict[str, int] = {}
    lock = threading.Lock()
    experiment_id = run(f"load-{time.time_ns()}")["experiment_id"]

    def client(index: int) -> None:
        session = _session()
        created = _request(session, "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id})
        run_id = created["json"]["run"]["info"]["run_id"]
        ok = 0
        step = 0
        while time.monotonic() < deadline:
            metric = {
                "run_id": run_id,
                "key": "load",
                "value": index + step / 1000,
                "step": step,
                "timestamp": int(time.time() * 1000),
            }
            result = _request(session, "POST", "/api/2.0/mlflow/runs/log-metric", json=metric)
            with lock:
                statuses[str(result["status"])] += 1
            ok += result["status"] == 200
            step += 1
        with lock:
            logged[run_id] = ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(int(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"experiment_id": experiment_id, "logged": logged, "statuses": dict(statuses)}


def main() -> int:
    commands = {"call": call, "run": run, "put": put, "get": get, "load": load}
    print(json.dumps(commands[sys.argv[1]](*sys.argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
