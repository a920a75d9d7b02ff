"""nginx_proxy's ACME input checks (tasks/preflight.yml) refuse bad input with a message naming the variable.

Run on localhost with the role's defaults and vars; none of these reaches the directory probe
except the last, whose directory does not answer.
"""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT, failure_messages, find_free_port, run_playbook, task_results
from support.role_template import role_vars

BASE = {
    "nginx_proxy_server_name": "localhost",
    "nginx_proxy_users": [{"name": "alice", "password": "preflight-alice-password-01"}],
    "nginx_proxy_acme_enabled": True,
}


def _preflight(tmp_path, **overrides) -> tuple[int, str]:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the nginx_proxy preflight",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/nginx_proxy/tasks/preflight.yml"),
            }
        ],
    }
    proc = run_playbook([play], tmp_path, variables={**role_vars("nginx_proxy"), **BASE, **overrides})
    return proc.returncode, failure_messages(task_results(proc))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"nginx_proxy_tls_enabled": False}, "nginx_proxy_tls_enabled"),
        (
            {"nginx_proxy_tls_certificate": "/c.pem", "nginx_proxy_tls_certificate_key": "/k.pem"},
            "nginx_proxy_tls_certificate",
        ),
        ({"nginx_proxy_acme_domains": []}, "nginx_proxy_acme_domains"),
        ({"nginx_proxy_acme_domains": ["ok.example", "bad name"]}, "nginx_proxy_acme_domains"),
        ({"nginx_proxy_acme_directory_url": "ftp://acme.example/dir"}, "nginx_proxy_acme_directory_url"),
        ({"nginx_proxy_acme_renew_days": 0}, "nginx_proxy_acme_renew_days"),
    ],
)
def test_bad_acme_input_is_refused(tmp_path, overrides, named):
    rc, msg = _preflight(tmp_path, **overrides)
    assert rc != 0
    assert named in msg, msg


def test_unanswering_directory_is_refused(tmp_path):
    url = f"https://127.0.0.1:{find_free_port()}/directory"
    rc, msg = _preflight(tmp_path, nginx_proxy_acme_directory_url=url)
    assert rc != 0
    assert f"nginx_proxy_acme_directory_url {url} does not answer as an ACME directory" in msg, msg


def test_acme_off_skips_the_probe(tmp_path):
    rc, msg = _preflight(
        tmp_path, nginx_proxy_acme_enabled=False, nginx_proxy_acme_directory_url="https://127.0.0.1:1/"
    )
    assert (rc, msg) == (0, "")
