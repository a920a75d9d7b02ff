"""mlops_acme_*: ACME certificates for the public name, on the proxy only, from the directory the
user names (Let's Encrypt staging or production, a private ACME server); refused, naming the knob,
where http-01 could not work."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.layout import layout
from ansible_collections.mlops.mlflow.tests.unit.plugins.filter.layout_inputs import ALL_IN_ONE, SECRETS

STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SPLIT = {"mlflow_server": ["m1"], "mlflow_proxy": ["px"]}


def _hostvars(hosts, **extra):
    return {host: {**SECRETS, "mlops_private_address": "10.0.0.5", **extra} for host in hosts}


def test_the_directory_turns_acme_on_for_the_public_name():
    hostvars = _hostvars(
        ["px", "m1"],
        mlops_public_hostname="mlflow.example.org",
        mlops_acme_directory_url=STAGING,
        mlops_acme_email="ops@example.org",
        mlops_acme_ca_bundle="/etc/ssl/private-acme-root.pem",
    )
    proxy = layout("px", hostvars, SPLIT)
    assert proxy["nginx_proxy_acme_enabled"] is True
    assert proxy["nginx_proxy_acme_directory_url"] == STAGING
    assert proxy["nginx_proxy_acme_domains"] == ["mlflow.example.org"]
    assert proxy["nginx_proxy_acme_email"] == "ops@example.org"
    assert proxy["nginx_proxy_acme_ca_bundle"] == "/etc/ssl/private-acme-root.pem"
    assert not [name for name in layout("m1", hostvars, SPLIT) if name.startswith("nginx_proxy_acme")]


def test_without_a_directory_the_certificate_stays_self_signed():
    derived = layout("pi", _hostvars(["pi"], mlops_acme_email="ops@example.org"), ALL_IN_ONE)
    assert "nginx_proxy_acme_enabled" not in derived and "nginx_proxy_acme_domains" not in derived


def test_the_role_variables_set_in_the_inventory_win():
    hostvars = _hostvars(["pi"], mlops_public_hostname="mlflow.example.org", mlops_acme_directory_url=STAGING)
    hostvars["pi"]["nginx_proxy_acme_domains"] = ["mlflow.example.org", "tracking.example.org"]
    derived = layout("pi", hostvars, ALL_IN_ONE)
    assert derived["nginx_proxy_acme_enabled"] is True and "nginx_proxy_acme_domains" not in derived


@pytest.mark.parametrize(
    ("groups", "extra", "message"),
    [
        (ALL_IN_ONE, {"mlops_acme_directory_url": "http://acme.example.org/dir"}, "an https:// URL"),
        (ALL_IN_ONE, {"mlops_acme_directory_url": "acme-v02.api.letsencrypt.org"}, "an https:// URL"),
        (ALL_IN_ONE, {"mlops_acme_directory_url": ["https://a.example/dir"]}, "an https:// URL"),
        (
            {**SPLIT, "mlflow_proxy": ["px", "py"]},
            {"mlops_acme_directory_url": STAGING, "mlops_public_hostname": "mlflow.example.org"},
            "2 hosts in mlflow_proxy",
        ),
        (ALL_IN_ONE, {"mlops_acme_directory_url": STAGING, "mlops_public_hostname": "192.0.2.7"}, "a DNS name"),
    ],
)
def test_refused_naming_the_knob(groups, extra, message):
    hosts = sorted({host for members in groups.values() for host in members})
    with pytest.raises(AnsibleFilterError, match="mlops_acme_directory_url") as error:
        layout(groups["mlflow_proxy"][0], _hostvars(hosts, **extra), groups)
    assert message in str(error.value)


def test_the_roles_checks_can_name_the_knobs_the_user_set():
    hostvars = _hostvars(
        ["px", "m1"],
        mlops_public_hostname="mlflow.example.org",
        mlops_acme_directory_url=STAGING,
        mlops_acme_email="x@y.z",
    )
    hostvars["px"]["nginx_proxy_acme_ca_bundle"] = "/etc/ssl/own.pem"  # a role variable of the user's: no origin
    origins = layout("px", hostvars, SPLIT)["mlops_layout_origins"]
    assert origins["nginx_proxy_acme_directory_url"] == "mlops_acme_directory_url"
    assert origins["nginx_proxy_acme_enabled"] == "mlops_acme_directory_url"
    assert origins["nginx_proxy_acme_domains"] == "mlops_public_hostname"
    assert origins["nginx_proxy_acme_email"] == "mlops_acme_email"
    assert "nginx_proxy_acme_ca_bundle" not in origins
    # Names only: no value of the user's travels in it.
    assert set(origins.values()) <= {"mlops_acme_directory_url", "mlops_public_hostname", "mlops_acme_email"}


def test_the_external_account_binding_reaches_the_proxy_and_its_key_is_a_secret():
    hostvars = _hostvars(
        ["pi"],
        mlops_public_hostname="mlflow.example.org",
        mlops_acme_directory_url="https://acme.zerossl.com/v2/DV90",
        mlops_acme_eab_kid="kid-1",
        mlops_acme_eab_hmac_key="c2VjcmV0LWhtYWMta2V5",
    )
    plain, secret = layout("pi", hostvars, ALL_IN_ONE), layout("pi", hostvars, ALL_IN_ONE, secrets=True)
    assert plain["nginx_proxy_acme_eab_kid"] == "kid-1" and "nginx_proxy_acme_eab_hmac_key" not in plain
    assert secret["nginx_proxy_acme_eab_hmac_key"] == "c2VjcmV0LWhtYWMta2V5"
    assert plain["mlops_layout_origins"]["nginx_proxy_acme_eab_hmac_key"] == "mlops_acme_eab_hmac_key"
