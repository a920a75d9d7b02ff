"""mlops_public_https_port: the HTTPS port clients reach reaches the proxies' redirect
(nginx_proxy_public_https_port), and nothing else."""

from __future__ import annotations

from ansible_collections.mlops.mlflow.plugins.filter.layout import layout

SPLIT = {"mlflow_server": ["m1"], "mlflow_proxy": ["px"]}
COMMON = {"mlops_users": [{"name": "alice", "password": "alice-password-1"}], "mlops_private_address": "10.0.0.5"}


def _hostvars(**extra):
    return {host: {**COMMON, **extra} for host in ("m1", "px")}


def test_the_public_port_reaches_the_proxies_only():
    hostvars = _hostvars(mlops_public_https_port=8443)
    assert layout("px", hostvars, SPLIT)["nginx_proxy_public_https_port"] == 8443
    assert "nginx_proxy_public_https_port" not in layout("m1", hostvars, SPLIT)


def test_without_it_the_role_default_applies():
    assert "nginx_proxy_public_https_port" not in layout("px", _hostvars(), SPLIT)


def test_the_role_variable_set_in_the_inventory_wins():
    hostvars = _hostvars(mlops_public_https_port=8443)
    hostvars["px"]["nginx_proxy_public_https_port"] = 9443
    assert "nginx_proxy_public_https_port" not in layout("px", hostvars, SPLIT)
