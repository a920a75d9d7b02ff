"""What team members do at the single sign-on site (runs inside the test host, mlflow's venv):

    python oidc_client.py closed                 each path without credentials: status and Location
    python oidc_client.py login SUB              log in through the provider's form as SUB (no browser)
    python oidc_client.py token-run SUB          log in, make an access token, log a run with the mlflow client
    python oidc_client.py create-experiment SUB  log in, make a token, try to create an experiment
    python oidc_client.py bad-tokens SUB         a garbage token, a deleted one and a bearer that is no JWT

Prints one JSON line. The site is https://localhost, the provider http://127.0.0.1:9400.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta

import requests

SITE = "https://localhost"
# The site's self-signed certificate (nginx_proxy's, SAN localhost) is what clients trust here.
CA = "/etc/nginx/tls/mlflow.crt"
CLOSED = [
    ("GET", "/"),
    ("GET", "/api/2.0/mlflow/experiments/search?max_results=5"),
    ("GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=5"),
    ("POST", "/graphql"),
    ("GET", "/get-artifact?path=model.pkl&run_uuid=0123456789abcdef"),
    ("GET", "/static-files/index.html"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"),
    ("GET", "/api/2.0/mlflow/users/current"),
    ("GET", "/metrics"),
]
SEARCH = f"{SITE}/api/2.0/mlflow/experiments/search?max_results=5"


def closed() -> dict:
    out = {}
    for method, path in CLOSED:
        answer = requests.request(
            method, SITE + path, json={} if method == "POST" else None, allow_redirects=False, verify=CA, timeout=30
        )
        out[f"{method} {path}"] = [answer.status_code, answer.headers.get("Location", "")]
    return out


def _login(sub: str) -> tuple[requests.Session, dict]:
    session = requests.Session()
    session.verify = CA
    answer = session.get(f"{SITE}/login", allow_redirects=True, timeout=30)
    at_provider = answer.url
    answer = session.post(answer.url, data={"sub": sub}, allow_redirects=True, timeout=60)
    me = session.get(f"{SITE}/api/2.0/mlflow/users/current", timeout=30)
    experiments = session.post(f"{SITE}/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=30)
    return session, {
        "provider_url": at_provider,
        "landed": [answer.status_code, answer.url],
        "current_user": me.status_code,
        "experiments": experiments.status_code,
    }


def _token(session: requests.Session, name: str, lifetime: timedelta) -> dict:
    expiration = (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = session.post(
        f"{SITE}/api/2.0/mlflow/users/current/tokens", json={"name": name, "expiration": expiration}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()


def token_run(sub: str) -> dict:
    session, seen = _login(sub)
    token = _token(session, "ci", timedelta(days=30))["token"]
    os.environ.update(MLFLOW_TRACKING_USERNAME=sub, MLFLOW_TRACKING_PASSWORD=token, MLFLOW_TRACKING_INSECURE_TLS="true")
    import mlflow

    mlflow.set_tracking_uri(SITE)
    mlflow.set_experiment(f"sso-{sub.split('@')[0]}")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("loss", 0.25)
    got = requests.get(
        f"{SITE}/api/2.0/mlflow/runs/get",
        params={"run_id": run.info.run_id},
        auth=(sub, token),
        verify=CA,
        timeout=30,
    )
    return {**seen, "run": got.status_code, "loss": got.json()["run"]["data"]["metrics"][0]["value"]}


def create_experiment(sub: str) -> dict:
    session, seen = _login(sub)
    token = _token(session, "read", timedelta(days=1))["token"]
    search = requests.get(SEARCH, auth=(sub, token), verify=CA, timeout=30)
    create = requests.post(
        f"{SITE}/api/2.0/mlflow/experiments/create",
        json={"name": f"{sub.split('@')[0]}-was-here"},
        auth=(sub, token),
        verify=CA,
        timeout=30,
    )
    return {**seen, "search": search.status_code, "create": create.status_code}


def bad_tokens(sub: str) -> dict:
    session, _ = _login(sub)
    deleted = _token(session, "deleted", timedelta(days=1))
    before = requests.get(SEARCH, auth=(sub, deleted["token"]), verify=CA, timeout=30).status_code
    session.delete(f"{SITE}/api/2.0/mlflow/users/current/tokens/{deleted['id']}", timeout=30).raise_for_status()
    return {
        "garbage": requests.get(SEARCH, auth=(sub, "garbage-token-0123456789"), verify=CA, timeout=30).status_code,
        "bearer": requests.get(
            SEARCH, headers={"Authorization": "Bearer not.a.jwt"}, verify=CA, timeout=30
        ).status_code,
        "before_delete": before,
        "after_delete": requests.get(SEARCH, auth=(sub, deleted["token"]), verify=CA, timeout=30).status_code,
    }


def main() -> None:
    command, *args = sys.argv[1:]
    handlers = {
        "closed": closed,
        "login": lambda sub: _login(sub)[1],
        "token-run": token_run,
        "create-experiment": create_experiment,
        "bad-tokens": bad_tokens,
    }
    print(json.dumps(handlers[command](*args)))


if __name__ == "__main__":
    main()
