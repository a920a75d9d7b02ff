"""The OIDC mode, run for real: mlflow-oidc-auth behind the role's nginx site, with a real provider.

The mlflow_server role renders its command line and env file (_server_args.j2, mlflow-server.env.j2,
after its preflight, which reads the provider's discovery document and checks the client secret);
mlflow 3.17.2 with mlflow-oidc-auth, installed from the role's OIDC lock in a cached venv
(support.oidc), runs exactly that on loopback; the role's own group grants script gives the groups
their permissions; nginx_proxy's site (nginx_proxy_auth=oidc) is served by a real nginx in front.
oidc-provider-mock is the provider, with client registration required. Users:

- alice (groups mlflow, ml-team: EDIT) logs in through the provider's form without a browser,
  creates an access token and logs a run with the real mlflow client (basic auth: email + token);
- rita (mlflow, viewers: READ) can read but not create an experiment;
- otto (outsiders) is refused at login;
- a garbage, deleted or expired token gets 401; every path without credentials is 401 or a 302 to
  the login.

The preflight's failures (an issuer that does not answer, a wrong client secret) name the variable.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, find_free_port, play_results, run_playbook
from support.mlflow_auth_server import _wait_healthy, stop
from support.nginx import SiteNginx
from support.oidc import browserless_login, oidc_venv_python, running_provider
from support.role_mlflow_server import local_server_vars, shell_environ
from support.role_template import render_role_template

pytestmark = pytest.mark.integration

ROLE = REPO_ROOT / "roles" / "mlflow_server"
SECRET_KEY = "oidc-test-session-secret-0123456789abcdef"
GROUP_PERMISSIONS = {"ml-team": "EDIT", "viewers": "READ"}
ALICE, RITA, OTTO = "alice@example.com", "rita@example.com", "otto@example.com"
# Each path without credentials: 401 (API) or 302 to the login (pages).
CLOSED_PATHS = [
    ("GET", "/"),
    ("GET", "/api/2.0/mlflow/experiments/search?max_results=5"),
    ("GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=5"),
    ("POST", "/graphql"),
    ("GET", "/get-artifact?path=model.pkl&run_uuid=0123456789abcdef"),
    ("GET", "/static-files/index.html"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"),
    ("GET", "/static-files/static/js/main.js"),
    ("GET", "/api/2.0/mlflow/users/current"),
    ("GET", "/api/2.0/mlflow/users"),
    ("GET", "/api/2.0/mlflow/permissions/groups/ml-team/experiments"),
]
# Not served on the public site at all: the app's API docs (off) and mlflow's metrics (nginx).
NOT_SERVED = ["/docs", "/redoc", "/openapi.json", "/metrics"]


def _role_variables(provider, public_url: str, port: int, home: Path, **overrides) -> dict:
    return {
        **local_server_vars(port, home),
        "mlflow_server_auth_enabled": True,
        "mlflow_server_auth_type": "oidc",
        "mlflow_server_auth_secret_key": SECRET_KEY,
        "mlflow_server_auth_oidc_issuer": provider.issuer,
        "mlflow_server_auth_oidc_client_id": provider.client_id,
        "mlflow_server_auth_oidc_client_secret": provider.client_secret,
        "mlflow_server_auth_oidc_public_url": public_url,
        "mlflow_server_auth_oidc_allowed_groups": ["mlflow"],
        "mlflow_server_auth_oidc_admin_groups": ["mlflow-admin"],
        "mlflow_server_auth_oidc_groups_claim": "groups",
        "mlflow_server_auth_oidc_group_permissions": GROUP_PERMISSIONS,
        "mlflow_server_auth_oidc_database_uri": f"sqlite:///{home}/oidc_auth.db",
        **overrides,
    }


def _preflight_and_render(variables: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """The role's preflight (check mode, as the role runs it first), then its two server templates."""
    templates = (ROLE / "templates" / "_server_args.j2", ROLE / "templates" / "mlflow-server.env.j2")
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "preflight"}}]
        + [
            {"ansible.builtin.debug": {"msg": f"{{{{ lookup('ansible.builtin.template', '{t}') }}}}"}}
            for t in templates
        ],
    }
    return run_playbook([play], tmp_path, variables=variables, check=True)


def _failures(proc: subprocess.CompletedProcess) -> str:
    return " ".join(
        result.get("msg", "")
        for task in json.loads(proc.stdout)["plays"][0]["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    )


def _grant_step(variables: dict, python: Path, home: Path, tmp_path: Path, *, check: bool) -> bool:
    """The role's grants step (tasks/auth_oidc.yml) on localhost as root; whether it reported a change."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "auth_oidc"}}],
    }
    step_vars = {
        **variables,
        "mlflow_server_user": "root",
        "mlflow_server_group": "root",
        "mlflow_server_config_dir": str(tmp_path),
        "mlflow_server_install_dir": str(tmp_path),
        "_mlflow_server_python": str(python),
    }
    proc = run_playbook([play], tmp_path, variables=step_vars, check=check)
    assert proc.returncode == 0, proc.stdout[-4000:]
    grant = [r for r in play_results(json.loads(proc.stdout)["plays"][0]) if "stdout" in r]
    assert len(grant) == 1, proc.stdout[-3000:]
    return grant[0]["changed"]


@pytest.fixture(scope="module")
def oidc_site(tmp_path_factory):
    """(public_url, provider, grants): the server behind nginx, users set at the provider."""
    tmp_path = tmp_path_factory.mktemp("oidc")
    python = oidc_venv_python()
    with running_provider() as provider:
        port, site_port = find_free_port(), find_free_port()
        public_url = f"http://127.0.0.1:{site_port}"
        provider.register_client(f"{public_url}/callback")
        provider.set_user(ALICE, ["mlflow", "ml-team"])
        provider.set_user(RITA, ["mlflow", "viewers"])
        provider.set_user(OTTO, ["outsiders"])
        home = tmp_path / "home"
        home.mkdir()
        variables = _role_variables(provider, public_url, port, home)
        proc = _preflight_and_render(variables, tmp_path)
        assert proc.returncode == 0, proc.stdout[-4000:]
        args, env_text = (result["msg"] for result in play_results(json.loads(proc.stdout)["plays"][0])[-2:])
        assert args.startswith("server --app-name oidc-auth ")
        env_file = tmp_path / "mlflow-server.env"
        env_file.write_text(env_text)
        environ = {**shell_environ(env_file), "PATH": os.environ["PATH"]}
        assert environ["OIDC_REDIRECT_URI"] == f"{public_url}/callback"
        log = tmp_path / "server.log"
        with log.open("ab") as sink:
            server = subprocess.Popen(
                [str(python.parent / "mlflow"), *shlex.split(args)],
                env=environ,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=home,
                start_new_session=True,
            )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", server, log, timeout=240)
            # Apply, apply again, check; then a check with one group more, twice (it writes nothing).
            more = {
                **variables,
                "mlflow_server_auth_oidc_group_permissions": {**GROUP_PERMISSIONS, "newcomers": "READ"},
            }
            grants = [
                _grant_step(step_vars, python, home, tmp_path, check=check)
                for step_vars, check in (
                    (variables, False),
                    (variables, False),
                    (variables, True),
                    (more, True),
                    (more, True),
                )
            ]
            site = tmp_path / "mlflow.conf"
            render_role_template(
                "nginx_proxy",
                "mlflow-site.conf.j2",
                site,
                tmp_path,
                {
                    "nginx_proxy_server_name": "127.0.0.1",
                    "nginx_proxy_upstreams": [f"127.0.0.1:{port}"],
                    "nginx_proxy_tls_enabled": False,
                    "nginx_proxy_http_port": site_port,
                    "nginx_proxy_auth": "oidc",
                },
            )
            with SiteNginx(site, site_port):
                yield public_url, provider, grants
        finally:
            stop(server)


def _token(session: requests.Session, url: str, name: str, expiration: datetime) -> dict:
    answer = session.post(
        f"{url}/api/2.0/mlflow/users/current/tokens",
        json={"name": name, "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _logged_in(url: str, sub: str) -> requests.Session:
    session, answer = browserless_login(url, sub)
    assert answer.status_code == 200, (answer.status_code, answer.url, answer.text[:500])
    assert session.get(f"{url}/api/2.0/mlflow/users/current", timeout=30).status_code == 200
    return session


def test_group_grants_step_is_idempotent_and_check_mode_tells_the_truth(oidc_site):
    _, _, grants = oidc_site
    assert grants == [True, False, False, True, True]


@pytest.mark.parametrize(("method", "path"), CLOSED_PATHS)
def test_every_path_is_closed_without_credentials(oidc_site, method, path):
    url, _, _ = oidc_site
    answer = requests.request(
        method, url + path, json={} if method == "POST" else None, allow_redirects=False, timeout=30
    )
    if answer.status_code == 302:
        assert "/login" in answer.headers["Location"] or "/oauth2/authorize" in answer.headers["Location"], (
            answer.headers
        )
    else:
        assert answer.status_code == 401, (answer.status_code, answer.text[:300])


@pytest.mark.parametrize("path", NOT_SERVED)
def test_docs_and_metrics_are_not_served(oidc_site, path):
    url, _, _ = oidc_site
    assert requests.get(url + path, allow_redirects=False, timeout=30).status_code == 404


def test_session_sees_the_experiments_and_the_ui(oidc_site):
    url, _, _ = oidc_site
    session = _logged_in(url, ALICE)
    # What the UI asks for its experiments list, and MLflow's UI bundle behind nginx's check.
    answer = session.post(f"{url}/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=30)
    assert answer.status_code == 200 and "experiments" in answer.json(), answer.text[:300]
    page = session.get(f"{url}/static-files/index.html", timeout=30)
    assert page.status_code == 200 and "<html" in page.text


def test_login_page_leads_to_the_provider(oidc_site):
    url, provider, _ = oidc_site
    answer = requests.get(f"{url}/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(f"{provider.issuer}/oauth2/authorize")


def test_token_logs_a_run_with_the_mlflow_client(oidc_site, tmp_path):
    url, _, _ = oidc_site
    session = _logged_in(url, ALICE)
    token = _token(session, url, "ci", datetime.now(UTC) + timedelta(days=30))["token"]
    program = (
        "import mlflow, sys\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "mlflow.set_experiment('oidc-alice')\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_param('alpha', '0.5')\n"
        "    mlflow.log_metric('loss', 0.25)\n"
        "print(run.info.run_id)\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": ALICE, "MLFLOW_TRACKING_PASSWORD": token}
    proc = subprocess.run(
        [os.environ.get("PYTHON", str(Path(os.sys.executable))), "-c", program, url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = proc.stdout.strip().splitlines()[-1]
    answer = requests.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, auth=(ALICE, token), timeout=30)
    assert answer.status_code == 200
    assert answer.json()["run"]["data"]["metrics"][0]["value"] == 0.25


def test_bad_tokens_get_401(oidc_site):
    url, _, _ = oidc_site
    session = _logged_in(url, ALICE)
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=5"
    assert requests.get(search, auth=(ALICE, "garbage-token-0123456789"), timeout=30).status_code == 401
    assert requests.get(search, headers={"Authorization": "Bearer not.a.jwt"}, timeout=30).status_code == 401
    # A deleted token stops working at once.
    deleted = _token(session, url, "deleted", datetime.now(UTC) + timedelta(days=1))
    assert requests.get(search, auth=(ALICE, deleted["token"]), timeout=30).status_code == 200
    answer = session.delete(f"{url}/api/2.0/mlflow/users/current/tokens/{deleted['id']}", timeout=30)
    assert answer.status_code == 200, answer.text
    assert requests.get(search, auth=(ALICE, deleted["token"]), timeout=30).status_code == 401
    # An expired one too.
    expiring = _token(session, url, "expiring", datetime.now(UTC) + timedelta(seconds=3))
    assert requests.get(search, auth=(ALICE, expiring["token"]), timeout=30).status_code == 200
    time.sleep(5)
    assert requests.get(search, auth=(ALICE, expiring["token"]), timeout=30).status_code == 401


def test_read_only_group_cannot_create_an_experiment(oidc_site):
    url, _, _ = oidc_site
    session = _logged_in(url, RITA)
    token = _token(session, url, "read", datetime.now(UTC) + timedelta(days=1))["token"]
    search = requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=5", auth=(RITA, token), timeout=30)
    assert search.status_code == 200
    answer = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": "rita-was-here"}, auth=(RITA, token), timeout=30
    )
    assert answer.status_code == 403, (answer.status_code, answer.text[:300])


def test_user_outside_the_allowed_groups_is_refused(oidc_site):
    url, _, _ = oidc_site
    session, answer = browserless_login(url, OTTO)
    assert session.get(f"{url}/api/2.0/mlflow/users/current", timeout=30).status_code == 401
    assert answer.status_code in (401, 403) or "error" in answer.url, (answer.status_code, answer.url)


def test_preflight_names_an_issuer_that_does_not_answer(tmp_path):
    class _Gone:
        issuer, client_id, client_secret = f"http://127.0.0.1:{find_free_port()}", "client", "secret"

    variables = _role_variables(_Gone, "https://mlflow.example.com", 5000, tmp_path)
    proc = _preflight_and_render(variables, tmp_path)
    assert proc.returncode != 0
    assert f"mlflow_server_auth_oidc_issuer {_Gone.issuer} does not answer as an OpenID provider" in _failures(proc)
    # Set by mlops.mlflow.site from the user's knob (mlops_layout_origins): the message names the knob.
    origins = {"mlflow_server_auth_oidc_issuer": "mlops_oidc_issuer"}
    proc = _preflight_and_render(variables | {"mlops_layout_origins": origins}, tmp_path)
    assert proc.returncode != 0
    assert f"mlops_oidc_issuer {_Gone.issuer} does not answer as an OpenID provider" in _failures(proc)


def test_preflight_names_a_wrong_client_secret(tmp_path):
    with running_provider() as provider:
        provider.register_client("https://mlflow.example.com/callback")
        good = _preflight_and_render(_role_variables(provider, "https://mlflow.example.com", 5000, tmp_path), tmp_path)
        assert good.returncode == 0, good.stdout[-3000:]
        provider.client_secret = "not-the-secret-of-this-client"
        variables = _role_variables(provider, "https://mlflow.example.com", 5000, tmp_path)
        proc = _preflight_and_render(variables, tmp_path)
        origins = {
            "mlflow_server_auth_oidc_client_id": "mlops_oidc_client_id",
            "mlflow_server_auth_oidc_client_secret": "mlops_oidc_client_secret",
        }
        from_knobs = _preflight_and_render(variables | {"mlops_layout_origins": origins}, tmp_path)
    assert proc.returncode != 0
    failures = _failures(proc)
    assert (
        "refuses mlflow_server_auth_oidc_client_id" in failures and "mlflow_server_auth_oidc_client_secret" in failures
    )
    assert "not-the-secret-of-this-client" not in proc.stdout
    # Set by mlops.mlflow.site from the user's knobs: the message names those.
    assert from_knobs.returncode != 0
    assert "refuses mlops_oidc_client_id" in _failures(from_knobs) and "mlops_oidc_client_secret" in _failures(
        from_knobs
    )
    assert "not-the-secret-of-this-client" not in from_knobs.stdout
