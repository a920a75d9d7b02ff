"""ACME from the user's inventory (mlops_acme_directory_url, mlops_acme_ca_bundle, mlops_acme_email):
nginx serves a certificate for the public name that the ACME server (prepare's pebble) issued over
http-01, which a client verifies against that server's root; the renewal timer is on, and its
service, run now, leaves a certificate that is not due as it is."""

from __future__ import annotations

import json

# The certificate nginx serves on 443, checked against pebble's root (its management API), by name.
VERIFY = """
import json, ssl, socket, urllib.request
pebble = ssl.create_default_context(cafile="/etc/test-acme/tls.pem")
root = urllib.request.urlopen("https://localhost:15000/roots/0", context=pebble, timeout=10).read().decode()
context = ssl.create_default_context(cadata=root)
with socket.create_connection(("127.0.0.1", 443), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        cert = tls.getpeercert()
print(json.dumps({"serial": cert["serialNumber"], "san": cert["subjectAltName"], "issuer": cert["issuer"]}))
"""


def _served(host) -> dict:
    return json.loads(host.check_output(f"python3 -c '{VERIFY}'").splitlines()[-1])


def test_nginx_serves_the_certificate_the_acme_server_issued(host):
    served = _served(host)  # raises unless it verifies against pebble's root for "localhost"
    assert served["san"] == [["DNS", "localhost"]]
    assert "Pebble" in json.dumps(served["issuer"])
    # The account certbot registered lives under the directory the inventory names.
    assert host.check_output("ls /var/lib/mlops-nginx-acme/config/accounts/localhost:14000/dir").split()
    settings = json.loads(host.file("/etc/nginx/acme-renew.json").content_string)
    assert (settings["directory_url"], settings["email"], settings["ca_bundle"], settings["domains"]) == (
        "https://localhost:14000/dir",
        "ops@mlflow.test",
        "/etc/test-acme/tls.pem",
        ["localhost"],
    )


def test_the_renewal_timer_runs_and_leaves_a_certificate_not_due(host):
    assert host.service("nginx-proxy-acme-renew.timer").is_enabled
    before = _served(host)["serial"]
    host.check_output("systemctl start nginx-proxy-acme-renew.service")
    assert "Result=success" in host.check_output("systemctl show -p Result nginx-proxy-acme-renew.service")
    assert _served(host)["serial"] == before
