"""The layout filters: what each host of an inventory gets, from its groups and mlops_* knobs alone."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.layout import (
    FilterModule,
    host_cidr,
    is_ip_address,
    layout,
    layout_missing,
    layout_reached,
    upstream_address,
)
from ansible_collections.mlops.mlflow.tests.unit.plugins.filter.layout_inputs import ALL_IN_ONE, SECRETS

SPLIT = {
    "mlflow_db": ["db"],
    "mlflow_object_store": ["s3"],
    "mlflow_server": ["m1", "m2"],
    "mlflow_proxy": ["px"],
}
ADDRESSES = {"db": "10.0.0.11", "s3": "10.0.0.12", "m1": "10.0.0.21", "m2": "fd00::22", "px": "10.0.0.30"}


def _hostvars(groups, common=SECRETS, addresses=None, **per_host):
    hosts = sorted({host for members in groups.values() for host in members})
    hostvars = {host: dict(common) for host in hosts}
    for host, address in (addresses or {}).items():
        if host in hostvars:
            hostvars[host]["mlops_private_address"] = address
    for host, extra in per_host.items():
        hostvars[host].update(extra)
    return hostvars


def _both(host, hostvars, groups):
    return {**layout(host, hostvars, groups), **layout(host, hostvars, groups, secrets=True)}


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "layout",
        "layout_missing",
        "layout_reached",
        "host_cidr",
        "upstream_address",
    }


@pytest.mark.parametrize(
    ("address", "cidr"),
    [
        ("10.0.0.5", "10.0.0.5/32"),
        ("192.168.1.200", "192.168.1.200/32"),
        ("fd00::5", "fd00::5/128"),
        ("::1", "::1/128"),
    ],
)
def test_host_cidr(address, cidr):
    assert host_cidr(address) == cidr


@pytest.mark.parametrize("bad", ["", "db.example", "10.0.0", "10.0.0.256", "10.0.0.1/24", "fd00::5::1", None, 5])
def test_host_cidr_refuses_what_is_no_address(bad):
    assert not is_ip_address(bad)
    with pytest.raises(AnsibleFilterError):
        host_cidr(bad)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("10.0.0.5", 5000, "10.0.0.5:5000"),
        ("fd00::5", 5000, "[fd00::5]:5000"),
        ("[fd00::5]", 1, "[fd00::5]:1"),
        ("mlflow-1", "8080", "mlflow-1:8080"),
    ],
)
def test_upstream_address(host, port, expected):
    assert upstream_address(host, port) == expected


def test_all_in_one_stays_on_loopback():
    plain = layout("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE)
    assert plain["postgres_listen_addresses"] == ["127.0.0.1"]
    assert plain["postgres_client_networks"] == []
    assert plain["object_store_bind_address"] == "127.0.0.1"
    assert plain["mlflow_server_host"] == "127.0.0.1"
    assert plain["mlflow_server_db_host"] == "127.0.0.1"
    assert plain["mlflow_server_backend"] == "postgresql"
    assert plain["mlflow_server_s3_endpoint_url"] == "http://127.0.0.1:8333"
    assert plain["mlflow_server_artifacts_destination"] == "s3://mlflow/artifacts"
    assert plain["nginx_proxy_upstreams"] == ["127.0.0.1:5000"]
    # No public name: the first proxy's inventory name, the same for nginx and mlflow.
    assert plain["nginx_proxy_server_name"] == "pi"
    assert plain["mlflow_server_public_hostnames"] == ["pi"]


def test_secrets_come_only_with_secrets_true_and_each_from_its_knob():
    hostvars = _hostvars(ALL_IN_ONE)
    plain, secret = layout("pi", hostvars, ALL_IN_ONE), layout("pi", hostvars, ALL_IN_ONE, secrets=True)
    assert not set(plain) & set(secret)
    assert not [value for value in plain.values() if value in SECRETS.values()]
    assert secret == {
        "postgres_db_password": SECRETS["mlops_db_password"],
        "mlflow_server_db_password": SECRETS["mlops_db_password"],
        "object_store_admin_access_key": SECRETS["mlops_s3_admin_access_key"],
        "object_store_admin_secret_key": SECRETS["mlops_s3_admin_secret_key"],
        "object_store_mlflow_access_key": SECRETS["mlops_s3_mlflow_access_key"],
        "object_store_mlflow_secret_key": SECRETS["mlops_s3_mlflow_secret_key"],
        "mlflow_server_s3_access_key": SECRETS["mlops_s3_mlflow_access_key"],
        "mlflow_server_s3_secret_key": SECRETS["mlops_s3_mlflow_secret_key"],
        "nginx_proxy_users": SECRETS["mlops_users"],
    }


def test_split_layout_binds_to_private_addresses_and_admits_exactly_the_servers():
    hostvars = _hostvars(SPLIT, addresses=ADDRESSES)
    assert layout("db", hostvars, SPLIT)["postgres_listen_addresses"] == ["127.0.0.1", "10.0.0.11"]
    assert layout("db", hostvars, SPLIT)["postgres_client_networks"] == ["10.0.0.21/32", "fd00::22/128"]
    assert layout("s3", hostvars, SPLIT)["object_store_bind_address"] == "10.0.0.12"
    m2 = layout("m2", hostvars, SPLIT)
    assert m2["mlflow_server_host"] == "fd00::22"
    assert m2["mlflow_server_db_host"] == "10.0.0.11"
    assert m2["mlflow_server_s3_endpoint_url"] == "http://10.0.0.12:8333"
    assert layout("px", hostvars, SPLIT)["nginx_proxy_upstreams"] == ["10.0.0.21:5000", "[fd00::22]:5000"]
    # Each host gets only what its own groups' roles read.
    # (mlops_layout_origins: the layout's own record of which knob set which of them.)
    assert not [
        name for name in layout("px", hostvars, SPLIT) if not name.startswith(("nginx_proxy_", "mlops_layout_"))
    ]
    assert not [name for name in layout("db", hostvars, SPLIT) if not name.startswith(("postgres_", "mlops_layout_"))]


def test_a_variable_the_user_set_is_never_derived_and_feeds_the_other_hosts():
    hostvars = _hostvars(
        SPLIT,
        addresses=ADDRESSES,
        m1={"mlflow_server_port": 5001, "mlflow_server_host": "0.0.0.0"},  # noqa: S104,
        s3={"object_store_s3_port": 9000, "object_store_bucket": "team-mlflow"},
        db={"postgres_client_networks": ["10.0.0.0/24"]},
        px={"nginx_proxy_users": [{"name": "bob", "password": "bob-password-01"}]},
    )
    assert "postgres_client_networks" not in layout("db", hostvars, SPLIT)
    assert "mlflow_server_host" not in layout("m1", hostvars, SPLIT)
    # A server on 0.0.0.0 is reached on its private address.
    assert layout("px", hostvars, SPLIT)["nginx_proxy_upstreams"] == ["10.0.0.21:5001", "[fd00::22]:5000"]
    assert "nginx_proxy_users" not in layout("px", hostvars, SPLIT, secrets=True)
    m2 = layout("m2", hostvars, SPLIT)
    assert m2["mlflow_server_s3_endpoint_url"] == "http://10.0.0.12:9000"
    assert m2["mlflow_server_artifacts_destination"] == "s3://team-mlflow/artifacts"


def test_a_proxy_on_another_host_makes_the_one_server_listen_privately():
    groups = {"mlflow_server": ["m1"], "mlflow_proxy": ["px"]}
    hostvars = _hostvars(groups, common={"mlops_users": SECRETS["mlops_users"]}, addresses=ADDRESSES)
    m1 = layout("m1", hostvars, groups)
    assert m1["mlflow_server_host"] == "10.0.0.21"
    assert m1["mlflow_server_backend"] == "sqlite"
    assert "mlflow_server_artifacts_destination" not in m1  # the role's local directory
    assert layout_missing(hostvars, groups) == []
    assert layout_reached(hostvars, groups) == ["m1"]


@pytest.mark.parametrize(
    ("uri", "backend", "store_uri"),
    [
        (
            "postgresql://u:p@rds.example:5432/mlflow?sslmode=require",
            "postgresql",
            "postgresql+psycopg2://u:p@rds.example:5432/mlflow?sslmode=require",
        ),
        ("postgresql+psycopg2://u:p@h/db", "postgresql", "postgresql+psycopg2://u:p@h/db"),
        ("mysql://u:p@h:3306/mlflow", "mysql", "mysql+pymysql://u:p@h:3306/mlflow"),
    ],
)
def test_a_database_by_uri_gets_the_driver_the_venv_has(uri, backend, store_uri):
    groups = {"mlflow_server": ["ec2"], "mlflow_proxy": ["ec2"]}
    hostvars = _hostvars(groups, common={"mlops_users": SECRETS["mlops_users"], "mlops_db_uri": uri})
    derived = layout("ec2", hostvars, groups)
    assert derived["mlflow_server_backend"] == backend
    # The URI carries the password: it is set with the secrets.
    assert "mlflow_server_backend_store_uri" not in derived
    assert layout("ec2", hostvars, groups, secrets=True)["mlflow_server_backend_store_uri"] == store_uri
    assert "mlflow_server_db_host" not in derived


def test_aws_s3_with_an_access_key_waits_for_the_s3_iam_host():
    groups = {"mlflow_server": ["ec2"], "mlflow_proxy": ["ec2"], "mlflow_s3_iam": ["localhost"]}
    common = {
        "mlops_users": SECRETS["mlops_users"],
        "mlops_s3_bucket": "team-bucket",
        "mlops_aws_region": "eu-central-1",
    }
    hostvars = _hostvars(groups, common=common)
    ec2 = layout("ec2", hostvars, groups)
    assert ec2["mlflow_server_artifacts_destination"] == "s3://team-bucket/artifacts"
    assert ec2["mlflow_server_s3_region"] == "eu-central-1"
    assert ec2["mlops_layout_s3_key_host"] == "localhost"
    iam = layout("localhost", hostvars, groups)
    assert iam == {
        "s3_iam_bucket": "team-bucket",
        "s3_iam_region": "eu-central-1",
        "s3_iam_mode": "access_key",
        "mlops_layout_origins": {"s3_iam_bucket": "mlops_s3_bucket", "s3_iam_region": "mlops_aws_region"},
    }
    # An instance profile: no key to hand over.
    hostvars = _hostvars(groups, common={**common, "mlops_s3_instance_role": "mlflow-ec2"})
    assert "mlops_layout_s3_key_host" not in layout("ec2", hostvars, groups)
    assert layout("localhost", hostvars, groups)["s3_iam_mode"] == "instance_profile"


def test_auth_app_feeds_the_users_to_both_layers_and_the_admin_to_nginx():
    auth = {
        "mlops_mlflow_auth": True,
        "mlops_mlflow_admin_password": "admin-password-1",
        "mlops_mlflow_secret_key": "k" * 32,
    }
    hostvars = _hostvars(ALL_IN_ONE, common={**SECRETS, **auth})
    plain, secret = layout("pi", hostvars, ALL_IN_ONE), layout("pi", hostvars, ALL_IN_ONE, secrets=True)
    assert plain["mlflow_server_auth_enabled"] is True
    assert secret["mlflow_server_auth_users"] == SECRETS["mlops_users"]
    assert secret["mlflow_server_auth_admin_password"] == "admin-password-1"
    assert secret["nginx_proxy_users"] == SECRETS["mlops_users"] + [{"name": "admin", "password": "admin-password-1"}]


def test_the_pi_profile_and_its_overrides():
    hostvars = _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_profile": "pi"})
    derived = _both("pi", hostvars, ALL_IN_ONE)
    assert derived["mlflow_server_workers"] == 1
    assert derived["nginx_proxy_upstream_keepalive"] == 16
    assert derived["postgres_shared_buffers"] == "32MB"
    assert derived["object_store_seaweedfs_memory_limit_mb"] == 256
    hostvars["pi"]["mlflow_server_workers"] = 2
    assert "mlflow_server_workers" not in layout("pi", hostvars, ALL_IN_ONE)
    with pytest.raises(AnsibleFilterError, match="mlops_profile"):
        layout("pi", _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_profile": "tiny"}), ALL_IN_ONE)


@pytest.mark.parametrize("knob", sorted(SECRETS))
def test_each_secret_left_out_is_named(knob):
    hostvars = _hostvars(ALL_IN_ONE, common={k: v for k, v in SECRETS.items() if k != knob})
    missing = layout_missing(hostvars, ALL_IN_ONE)
    assert [entry["name"] for entry in missing] == [knob]
    assert missing[0]["hosts"] == ["pi"]
    assert knob not in layout("pi", hostvars, ALL_IN_ONE, secrets=True)


@pytest.mark.parametrize("empty", ["", None, []])
def test_an_empty_secret_counts_as_missing(empty):
    hostvars = _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_db_password": empty})
    assert [entry["name"] for entry in layout_missing(hostvars, ALL_IN_ONE)] == ["mlops_db_password"]


def test_a_secret_is_not_missing_where_the_user_set_the_role_variables():
    common = {k: v for k, v in SECRETS.items() if k != "mlops_db_password"}
    hostvars = _hostvars(ALL_IN_ONE, common=common, pi={"postgres_db_password": "x" * 16})
    # The server still needs it: a role variable of the other role is not set.
    assert layout_missing(hostvars, ALL_IN_ONE) == [
        {"name": "mlops_db_password", "hosts": ["pi"], "why": "the password of mlflow's PostgreSQL role"}
    ]
    hostvars["pi"]["mlflow_server_db_password"] = "x" * 16
    assert layout_missing(hostvars, ALL_IN_ONE) == []


def test_auth_secrets_are_missing_only_with_the_auth_app():
    hostvars = _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_mlflow_auth": True})
    assert [e["name"] for e in layout_missing(hostvars, ALL_IN_ONE)] == [
        "mlops_mlflow_admin_password",
        "mlops_mlflow_secret_key",
    ]


def test_reached_hosts_of_the_split_layout():
    assert layout_reached(_hostvars(SPLIT), SPLIT) == ["db", "s3", "m1", "m2"]
    assert layout_reached(_hostvars(ALL_IN_ONE), ALL_IN_ONE) == []
    two_proxies = {"mlflow_server": ["a"], "mlflow_proxy": ["a", "b"]}
    assert layout_reached(_hostvars(two_proxies), two_proxies) == ["a"]


# -- mlops_db_engine: mariadb -------------------------------------------------------------------


def test_mariadb_all_in_one_stays_on_loopback_and_reaches_mlflow_by_pymysql():
    hostvars = _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_db_engine": "mariadb"})
    plain, secret = layout("pi", hostvars, ALL_IN_ONE), layout("pi", hostvars, ALL_IN_ONE, secrets=True)
    assert plain["mariadb_bind_addresses"] == ["127.0.0.1"]
    assert plain["mariadb_client_hosts"] == []
    assert plain["mlflow_server_backend"] == "mysql"
    assert plain["mlflow_server_db_host"] == "127.0.0.1"
    assert plain["mlflow_server_db_options"] == {"charset": "utf8mb4"}
    # The PostgreSQL role does not run: none of its variables is set.
    assert not [name for name in {**plain, **secret} if name.startswith("postgres_")]
    assert secret["mariadb_db_password"] == secret["mlflow_server_db_password"] == SECRETS["mlops_db_password"]


def test_mariadb_split_layout_binds_privately_and_admits_exactly_the_servers():
    hostvars = _hostvars(SPLIT, common={**SECRETS, "mlops_db_engine": "mariadb"}, addresses=ADDRESSES)
    db = layout("db", hostvars, SPLIT)
    assert db["mariadb_bind_addresses"] == ["127.0.0.1", "10.0.0.11"]
    assert db["mariadb_client_hosts"] == ["10.0.0.21", "fd00::22"]
    assert not [name for name in db if not name.startswith(("mariadb_", "mlops_layout_"))]
    assert layout("m1", hostvars, SPLIT)["mlflow_server_db_host"] == "10.0.0.11"


def test_the_postgresql_engine_sets_no_mariadb_variable():
    hostvars = _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_db_engine": "postgresql"})
    assert not [name for name in _both("pi", hostvars, ALL_IN_ONE) if name.startswith("mariadb_")]
    assert _both("pi", hostvars, ALL_IN_ONE) == _both("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE)


def test_a_mariadb_password_set_on_the_role_is_not_missing():
    common = {k: v for k, v in SECRETS.items() if k != "mlops_db_password"}
    hostvars = _hostvars(
        ALL_IN_ONE,
        common={**common, "mlops_db_engine": "mariadb"},
        pi={"mariadb_db_password": "x" * 16, "mlflow_server_db_password": "x" * 16},
    )
    assert layout_missing(hostvars, ALL_IN_ONE) == []
    del hostvars["pi"]["mariadb_db_password"]
    assert layout_missing(hostvars, ALL_IN_ONE) == [
        {"name": "mlops_db_password", "hosts": ["pi"], "why": "the password of mlflow's MariaDB account"}
    ]


def test_an_unknown_engine_is_refused():
    with pytest.raises(AnsibleFilterError, match="mlops_db_engine"):
        layout("pi", _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_db_engine": "oracle"}), ALL_IN_ONE)


OIDC = {
    "mlops_auth": "oidc",
    "mlops_oidc_issuer": "https://login.example.org/realms/ml",
    "mlops_oidc_client_id": "mlflow",
    "mlops_oidc_client_secret": "oidc-client-secret-0001",
    "mlops_mlflow_secret_key": "k" * 32,
}
BASIC_ONLY = {k: v for k, v in SECRETS.items() if k != "mlops_users"}


def test_oidc_runs_mlflow_oidc_auth_behind_an_nginx_that_checks_no_password():
    groups = {"ml-team": "EDIT", "viewers": "READ"}
    common = {
        **BASIC_ONLY,
        **OIDC,
        "mlops_oidc_allowed_groups": ["ml-team", "viewers"],
        "mlops_oidc_admin_groups": ["ml-admins"],
        "mlops_oidc_group_permissions": groups,
        "mlops_oidc_groups_claim": "roles",
        "mlops_public_hostname": "mlflow.example.org",
    }
    hostvars = _hostvars(ALL_IN_ONE, common=common)
    plain, secret = layout("pi", hostvars, ALL_IN_ONE), layout("pi", hostvars, ALL_IN_ONE, secrets=True)
    assert layout_missing(hostvars, ALL_IN_ONE) == []  # no mlops_users, no admin password
    assert plain["mlflow_server_auth_enabled"] is True
    assert plain["mlflow_server_auth_type"] == "oidc"
    assert plain["nginx_proxy_auth"] == "oidc"
    assert plain["mlflow_server_auth_oidc_issuer"] == OIDC["mlops_oidc_issuer"]
    assert plain["mlflow_server_auth_oidc_client_id"] == "mlflow"
    assert plain["mlflow_server_auth_oidc_allowed_groups"] == ["ml-team", "viewers"]
    assert plain["mlflow_server_auth_oidc_admin_groups"] == ["ml-admins"]
    assert plain["mlflow_server_auth_oidc_group_permissions"] == groups
    assert plain["mlflow_server_auth_oidc_groups_claim"] == "roles"
    # The callback the provider sends browsers back to is the public site's.
    assert plain["mlflow_server_auth_oidc_public_url"] == "https://mlflow.example.org"
    assert secret["mlflow_server_auth_oidc_client_secret"] == OIDC["mlops_oidc_client_secret"]
    assert secret["mlflow_server_auth_secret_key"] == "k" * 32
    assert "mlflow_server_auth_oidc_client_secret" not in plain
    for basic in ("nginx_proxy_users", "mlflow_server_auth_users", "mlflow_server_auth_admin_password"):
        assert basic not in plain and basic not in secret


def test_oidc_leaves_the_role_defaults_of_what_the_user_did_not_set():
    plain = layout("pi", _hostvars(ALL_IN_ONE, common={**BASIC_ONLY, **OIDC}), ALL_IN_ONE)
    for role_default in ("allowed_groups", "admin_groups", "group_permissions", "groups_claim", "database_uri"):
        assert f"mlflow_server_auth_oidc_{role_default}" not in plain


def test_oidc_public_url_carries_a_published_port_and_the_user_may_set_it():
    common = {**BASIC_ONLY, **OIDC, "mlops_public_https_port": 8443}
    hostvars = _hostvars(ALL_IN_ONE, common=common)
    assert layout("pi", hostvars, ALL_IN_ONE)["mlflow_server_auth_oidc_public_url"] == "https://pi:8443"
    hostvars["pi"]["mlflow_server_auth_oidc_public_url"] = "https://ml.example.org"
    assert "mlflow_server_auth_oidc_public_url" not in layout("pi", hostvars, ALL_IN_ONE)


@pytest.mark.parametrize(
    ("proxy_vars", "url"),
    [
        ({"nginx_proxy_https_port": 4443}, "https://px:4443"),  # nginx listens there, nothing republishes it
        ({"nginx_proxy_https_port": 4443, "mlops_public_https_port": 443}, "https://px"),
        ({"nginx_proxy_public_https_port": 9443, "mlops_public_https_port": 8443}, "https://px:9443"),
        ({}, "https://px"),
    ],
)
def test_oidc_callback_port_is_the_proxys_published_port_whatever_names_it(proxy_vars, url):
    # The callback is set on the servers, but the port is the proxy host's: a role variable the user set
    # there directly (nginx_proxy_https_port, nginx_proxy_public_https_port) counts like the knob.
    common = {**BASIC_ONLY, **OIDC, "mlops_oidc_database_uri": "postgresql://x/oidc"}
    hostvars = _hostvars(SPLIT, common=common, addresses=ADDRESSES)
    hostvars["px"].update(proxy_vars)
    for server in SPLIT["mlflow_server"]:
        assert layout(server, hostvars, SPLIT)["mlflow_server_auth_oidc_public_url"] == url


@pytest.mark.parametrize("knob", ["mlops_oidc_client_secret", "mlops_mlflow_secret_key"])
def test_oidc_secrets_left_out_are_named(knob):
    hostvars = _hostvars(ALL_IN_ONE, common={k: v for k, v in {**BASIC_ONLY, **OIDC}.items() if k != knob})
    assert [entry["name"] for entry in layout_missing(hostvars, ALL_IN_ONE)] == [knob]


@pytest.mark.parametrize("knob", ["mlops_oidc_issuer", "mlops_oidc_client_id"])
def test_oidc_without_the_provider_or_the_client_is_refused_naming_the_knob(knob):
    hostvars = _hostvars(ALL_IN_ONE, common={k: v for k, v in {**BASIC_ONLY, **OIDC}.items() if k != knob})
    with pytest.raises(AnsibleFilterError, match=f"mlops_auth is oidc on pi: set {knob}"):
        layout("pi", hostvars, ALL_IN_ONE)


def test_an_unknown_auth_mode_and_oidc_with_the_basic_auth_app_are_refused():
    with pytest.raises(AnsibleFilterError, match="mlops_auth is 'ldap' on pi; it must be one of: basic, oidc"):
        layout("pi", _hostvars(ALL_IN_ONE, common={**SECRETS, "mlops_auth": "ldap"}), ALL_IN_ONE)
    both = _hostvars(ALL_IN_ONE, common={**BASIC_ONLY, **OIDC, "mlops_mlflow_auth": True})
    with pytest.raises(AnsibleFilterError, match="mlops_mlflow_auth is true on pi, with mlops_auth: oidc"):
        layout("pi", both, ALL_IN_ONE)


def test_oidc_with_two_servers_needs_a_shared_database():
    hostvars = _hostvars(SPLIT, common={**BASIC_ONLY, **OIDC}, addresses=ADDRESSES)
    with pytest.raises(AnsibleFilterError, match="set mlops_oidc_database_uri to a database they share"):
        layout("m1", hostvars, SPLIT)
    uri = "postgresql://oidc:pw@10.0.0.11/oidc"
    hostvars = _hostvars(SPLIT, common={**BASIC_ONLY, **OIDC, "mlops_oidc_database_uri": uri}, addresses=ADDRESSES)
    assert layout("m1", hostvars, SPLIT, secrets=True)["mlflow_server_auth_oidc_database_uri"] == uri
    assert "backup_stores" not in layout("m1", hostvars, SPLIT)  # not a SQLite file of this host
    assert layout("px", hostvars, SPLIT)["nginx_proxy_auth"] == "oidc"


def test_oidc_database_in_sqlite_is_backed_up_with_the_other_stores():
    plain = layout("pi", _hostvars(ALL_IN_ONE, common={**BASIC_ONLY, **OIDC}), ALL_IN_ONE)
    assert plain["backup_stores"] == [{"name": "oidc_auth", "path": "/var/lib/mlflow/oidc_auth.db"}]
    sqlite_only = {"mlflow_server": ["pi"], "mlflow_proxy": ["pi"]}
    plain = layout("pi", _hostvars(sqlite_only, common={**BASIC_ONLY, **OIDC}), sqlite_only)
    assert plain["backup_stores"] == [
        {"name": "mlflow", "path": "/var/lib/mlflow/mlflow.db"},
        {"name": "oidc_auth", "path": "/var/lib/mlflow/oidc_auth.db"},
    ]


def test_basic_stays_the_default_and_needs_the_users():
    hostvars = _hostvars(ALL_IN_ONE, common=BASIC_ONLY)
    assert [entry["name"] for entry in layout_missing(hostvars, ALL_IN_ONE)] == ["mlops_users"]
    plain = layout("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE)
    assert "nginx_proxy_auth" not in plain and "mlflow_server_auth_type" not in plain
    assert plain["mlflow_server_auth_enabled"] is False


def test_a_monitoring_host_of_its_own_turns_every_exporter_on_privately():
    groups = {**SPLIT, "mlflow_monitoring": ["mon"]}
    hostvars = _hostvars(groups, addresses={**ADDRESSES, "mon": "10.0.0.40"})
    derived = {host: layout(host, hostvars, groups) for host in ("db", "s3", "m1", "m2", "px", "mon")}
    for host in ("db", "s3", "m1", "m2", "px"):
        assert derived[host]["common_node_exporter_enabled"] is True
    assert derived["db"]["common_node_exporter_listen"] == "10.0.0.11:9100"
    assert derived["db"]["postgres_exporter_enabled"] is True
    assert derived["db"]["postgres_exporter_listen"] == "10.0.0.11:9187"
    assert derived["s3"]["object_store_metrics_enabled"] is True
    assert derived["s3"]["object_store_metrics_address"] == "10.0.0.12"
    assert derived["m2"]["mlflow_server_metrics_enabled"] is True
    assert derived["m2"]["common_node_exporter_listen"] == "[fd00::22]:9100"
    assert derived["px"]["nginx_proxy_metrics_enabled"] is True
    assert derived["px"]["nginx_proxy_exporter_listen"] == "10.0.0.30:9113"
    # Exporters are turned on only for the groups a host is in; the monitoring host runs none of ours.
    assert "postgres_exporter_enabled" not in derived["px"] and "nginx_proxy_metrics_enabled" not in derived["db"]
    assert derived["mon"] == {}
    assert layout_reached(hostvars, groups) == ["db", "s3", "m1", "m2", "px"]


def test_monitoring_on_the_all_in_one_host_keeps_everything_on_loopback():
    groups = {**ALL_IN_ONE, "mlflow_monitoring": ["pi"]}
    derived = layout("pi", _hostvars(groups), groups)
    assert derived["common_node_exporter_listen"] == "127.0.0.1:9100"
    assert derived["postgres_exporter_listen"] == "127.0.0.1:9187"
    assert derived["object_store_metrics_address"] == "127.0.0.1"
    assert derived["nginx_proxy_exporter_listen"] == "127.0.0.1:9113"
    assert derived["mlflow_server_metrics_enabled"] is True
    assert derived["mlflow_server_host"] == "127.0.0.1"
    assert layout_reached(_hostvars(groups), groups) == []


def test_monitoring_from_elsewhere_reaches_an_all_in_one_host_on_its_private_address():
    groups = {**ALL_IN_ONE, "mlflow_monitoring": ["mon"]}
    hostvars = _hostvars(
        groups, addresses={"pi": "10.0.0.5", "mon": "10.0.0.40"}, mon={"monitoring_node_exporter_port": 9200}
    )
    derived = layout("pi", hostvars, groups)
    # mlflow's /metrics is on its own port: it listens where Prometheus reaches it.
    assert derived["mlflow_server_host"] == "10.0.0.5"
    assert derived["nginx_proxy_upstreams"] == ["10.0.0.5:5000"]
    # The ports are the monitoring host's.
    assert derived["common_node_exporter_listen"] == "10.0.0.5:9200"
    assert layout_reached(hostvars, groups) == ["pi"]


def test_no_monitoring_host_no_exporter_and_a_second_one_is_refused():
    assert not {k for k in layout("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE) if "exporter" in k or "metrics" in k}
    groups = {**ALL_IN_ONE, "mlflow_monitoring": ["pi", "mon"]}
    with pytest.raises(AnsibleFilterError, match="mlflow_monitoring takes one host"):
        layout("pi", _hostvars(groups), groups)


def test_monitoring_turns_no_exporter_on_for_mariadb_and_the_user_may_keep_one_off():
    groups = {**ALL_IN_ONE, "mlflow_monitoring": ["pi"]}
    derived = layout("pi", _hostvars(groups, common={**SECRETS, "mlops_db_engine": "mariadb"}), groups)
    assert "postgres_exporter_enabled" not in derived
    hostvars = _hostvars(groups, pi={"nginx_proxy_metrics_enabled": False})
    assert "nginx_proxy_metrics_enabled" not in layout("pi", hostvars, groups)


def test_gc_knob_turns_mlflow_gc_on_for_the_first_server_only():
    hostvars = _hostvars(
        SPLIT, addresses=ADDRESSES, m1={"mlops_gc_older_than": "30d"}, m2={"mlops_gc_older_than": "30d"}
    )
    first, second = layout("m1", hostvars, SPLIT), layout("m2", hostvars, SPLIT)
    assert (first["mlflow_server_gc_enabled"], first["mlflow_server_gc_older_than"]) == (True, "30d")
    assert "mlflow_server_gc_enabled" not in second and "mlflow_server_gc_older_than" not in second
    assert not [name for name in layout("px", hostvars, SPLIT) if name.startswith("mlflow_server_gc")]


def test_without_the_gc_knob_nothing_is_purged():
    plain = layout("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE)
    assert not [name for name in plain if name.startswith("mlflow_server_gc")]
