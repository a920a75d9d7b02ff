# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""The layout of an mlops.mlflow inventory, computed from its groups and mlops_* knobs.

The site playbook's first play (role mlops.mlflow.layout) calls these filters once per run and
sets, on each host, the role variables its groups need: who listens where, which addresses
PostgreSQL admits, where nginx sends requests, and which mlops_* secret feeds which role. A role
variable the user set anywhere in the inventory (or with -e) is never derived: it wins.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.store import with_driver

DB = "mlflow_db"
STORE = "mlflow_object_store"
SERVER = "mlflow_server"
PROXY = "mlflow_proxy"
S3_IAM = "mlflow_s3_iam"
MONITORING = "mlflow_monitoring"

# Defaults of the roles that other hosts' derived values read (the roles' defaults/main.yml).
ROLE_DEFAULTS = {
    "object_store_bucket": "mlflow",
    "object_store_s3_port": 8333,
    "object_store_bind_address": "127.0.0.1",
    "mlflow_server_host": "127.0.0.1",
    "mlflow_server_port": 5000,
    "mlflow_server_auth_admin_username": "admin",
    "s3_iam_prefix": "artifacts",
    "mlflow_server_home": "/var/lib/mlflow",
    "mlflow_server_s3_region": "us-east-1",
    "monitoring_node_exporter_port": 9100,
    "monitoring_postgres_exporter_port": 9187,
    "monitoring_nginx_exporter_port": 9113,
}

# With a mlflow_monitoring host, the exporter of each group (the monitoring role scrapes them):
# group -> [(enabled variable, listen variable, the monitoring host's port variable or None)].
# A listen variable with no port variable takes an address alone (SeaweedFS's -metricsIp).
EXPORTERS = {
    DB: [("postgres_exporter_enabled", "postgres_exporter_listen", "monitoring_postgres_exporter_port")],
    STORE: [("object_store_metrics_enabled", "object_store_metrics_address", None)],
    SERVER: [("mlflow_server_metrics_enabled", None, None)],
    PROXY: [("nginx_proxy_metrics_enabled", "nginx_proxy_exporter_listen", "monitoring_nginx_exporter_port")],
}

# mlops_profile: role settings for a kind of host. pi: the whole stack within 1 GiB under 16 busy
# clients (docs/benchmarks.md, footprint). One mlflow worker keeps TCP_NODELAY, so nginx may reuse
# upstream connections again.
PROFILES = {
    "default": {},
    "pi": {
        SERVER: {"mlflow_server_workers": 1},
        PROXY: {"nginx_proxy_upstream_keepalive": 16},
        DB: {"postgres_shared_buffers": "32MB"},
        STORE: {"object_store_seaweedfs_memory_limit_mb": 256},
    },
}

# mlops_db_engine: the role the mlflow_db host runs, and the backend the mlflow servers reach it with.
ENGINES = {"postgresql": ("postgres", "postgresql"), "mariadb": ("mariadb", "mysql")}

# mlops_auth: who checks logins. basic: nginx against mlops_users (mlops_mlflow_auth adds MLflow's
# basic-auth app and its permissions behind it). oidc: mlflow-oidc-auth, at the OpenID Connect
# provider mlops_oidc_issuer names; nginx passes requests on and the app refuses those without a
# session or token.
AUTH_MODES = ("basic", "oidc")
# The OIDC knobs, by the mlflow_server variable each feeds, and what a required one is (None: optional;
# mlops_oidc_client_secret is required through SECRETS, below, which names it with the other secrets).
OIDC_KNOBS = (
    ("mlops_oidc_issuer", "mlflow_server_auth_oidc_issuer", "the provider's issuer URL"),
    ("mlops_oidc_client_id", "mlflow_server_auth_oidc_client_id", "the client registered there"),
    ("mlops_oidc_client_secret", "mlflow_server_auth_oidc_client_secret", None),
    ("mlops_oidc_allowed_groups", "mlflow_server_auth_oidc_allowed_groups", None),
    ("mlops_oidc_admin_groups", "mlflow_server_auth_oidc_admin_groups", None),
    ("mlops_oidc_group_permissions", "mlflow_server_auth_oidc_group_permissions", None),
    ("mlops_oidc_groups_claim", "mlflow_server_auth_oidc_groups_claim", None),
    ("mlops_oidc_database_uri", "mlflow_server_auth_oidc_database_uri", None),
)

# Collection-level knobs that map one-to-one onto a role variable of the hosts in a group
# (a variable of a database role only for the engine that runs it).
KNOBS = (
    (DB, "mlops_db_password", "postgres_db_password"),
    (DB, "mlops_db_password", "mariadb_db_password"),
    (STORE, "mlops_s3_admin_access_key", "object_store_admin_access_key"),
    (STORE, "mlops_s3_admin_secret_key", "object_store_admin_secret_key"),
    (STORE, "mlops_s3_mlflow_access_key", "object_store_mlflow_access_key"),
    (STORE, "mlops_s3_mlflow_secret_key", "object_store_mlflow_secret_key"),
    (PROXY, "mlops_public_https_port", "nginx_proxy_public_https_port"),
    # ACME certificates (see Layout._acme): mlops_acme_directory_url turns them on.
    (PROXY, "mlops_acme_directory_url", "nginx_proxy_acme_directory_url"),
    (PROXY, "mlops_acme_email", "nginx_proxy_acme_email"),
    (PROXY, "mlops_acme_ca_bundle", "nginx_proxy_acme_ca_bundle"),
    (PROXY, "mlops_acme_eab_kid", "nginx_proxy_acme_eab_kid"),
    (PROXY, "mlops_acme_eab_hmac_key", "nginx_proxy_acme_eab_hmac_key"),
    (S3_IAM, "mlops_s3_bucket", "s3_iam_bucket"),
    (S3_IAM, "mlops_s3_prefix", "s3_iam_prefix"),
    (S3_IAM, "mlops_aws_region", "s3_iam_region"),
    (S3_IAM, "mlops_s3_endpoint_url", "s3_iam_endpoint_url"),
    (S3_IAM, "mlops_s3_instance_role", "s3_iam_instance_role"),
    (S3_IAM, "mlops_aws_admin_access_key", "s3_iam_admin_access_key"),
    (S3_IAM, "mlops_aws_admin_secret_key", "s3_iam_admin_secret_key"),
    (SERVER, "mlops_aws_region", "mlflow_server_s3_region"),
    (SERVER, "mlops_mlflow_admin_password", "mlflow_server_auth_admin_password"),
    (SERVER, "mlops_mlflow_secret_key", "mlflow_server_auth_secret_key"),
    # The off-host backup target (see Layout._backup_target): pgBackRest on the database host,
    # the backup role (rclone) on the mlflow servers.
    (DB, "mlops_backup_target_access_key", "postgres_pgbackrest_s3_key"),
    (DB, "mlops_backup_target_secret_key", "postgres_pgbackrest_s3_key_secret"),
    (DB, "mlops_backup_target_cipher_pass", "postgres_pgbackrest_cipher_pass"),
    (SERVER, "mlops_backup_target_access_key", "backup_target_access_key"),
    (SERVER, "mlops_backup_target_secret_key", "backup_target_secret_key"),
)

# Derived role variables that come from one knob of the user's besides KNOBS and OIDC_KNOBS, so that
# the roles' checks can name the knob the user set (mlops_layout_origins).
ORIGINS = (
    ("nginx_proxy_acme_enabled", "mlops_acme_directory_url"),
    ("nginx_proxy_acme_domains", "mlops_public_hostname"),
    ("nginx_proxy_server_name", "mlops_public_hostname"),
    ("mlflow_server_public_hostnames", "mlops_public_hostname"),
    ("mlflow_server_auth_oidc_public_url", "mlops_public_hostname"),
    ("mlflow_server_gc_enabled", "mlops_gc_older_than"),
    ("mlflow_server_gc_older_than", "mlops_gc_older_than"),
)

# What a user must define, by the role variable it feeds: (knob, role variable, group, when, why).
# "when" names a condition of the layout (see Layout.condition).
SECRETS = (
    ("mlops_db_password", "postgres_db_password", DB, "postgresql", "the password of mlflow's PostgreSQL role"),
    ("mlops_db_password", "mariadb_db_password", DB, "mariadb", "the password of mlflow's MariaDB account"),
    ("mlops_db_password", "mlflow_server_db_password", SERVER, "db_host", "the password of mlflow's PostgreSQL role"),
    ("mlops_s3_admin_access_key", "object_store_admin_access_key", STORE, "always", "the S3 store's admin key"),
    ("mlops_s3_admin_secret_key", "object_store_admin_secret_key", STORE, "always", "the S3 store's admin secret"),
    ("mlops_s3_mlflow_access_key", "object_store_mlflow_access_key", STORE, "always", "mlflow's S3 key"),
    ("mlops_s3_mlflow_secret_key", "object_store_mlflow_secret_key", STORE, "always", "mlflow's S3 secret"),
    ("mlops_s3_mlflow_access_key", "mlflow_server_s3_access_key", SERVER, "store_host", "mlflow's S3 key"),
    ("mlops_s3_mlflow_secret_key", "mlflow_server_s3_secret_key", SERVER, "store_host", "mlflow's S3 secret"),
    ("mlops_users", "nginx_proxy_users", PROXY, "basic", "the users nginx lets in (name and password)"),
    ("mlops_mlflow_admin_password", "mlflow_server_auth_admin_password", SERVER, "auth", "the auth app's admin"),
    ("mlops_mlflow_secret_key", "mlflow_server_auth_secret_key", SERVER, "any_auth", "the auth app's session key"),
    (
        "mlops_oidc_client_secret",
        "mlflow_server_auth_oidc_client_secret",
        SERVER,
        "oidc",
        "the client secret registered at the OIDC provider",
    ),
    ("mlops_backup_target_access_key", "backup_target_access_key", SERVER, "backup", "the backup target's key"),
    ("mlops_backup_target_secret_key", "backup_target_secret_key", SERVER, "backup", "the backup target's secret"),
    ("mlops_backup_target_access_key", "postgres_pgbackrest_s3_key", DB, "backup_pg", "the backup target's key"),
    (
        "mlops_backup_target_secret_key",
        "postgres_pgbackrest_s3_key_secret",
        DB,
        "backup_pg",
        "the backup target's secret",
    ),
    (
        "mlops_backup_target_cipher_pass",
        "postgres_pgbackrest_cipher_pass",
        DB,
        "backup_pg",
        "the pass that encrypts the database's backups (without it they cannot be read)",
    ),
)

# The off-host backup target's knobs that are no secret (mlops_backup_target_bucket turns it on).
BACKUP_TARGET_DEFAULTS = {"mlops_backup_target_region": "us-east-1", "mlops_backup_target_prefix": "mlflow"}
_BACKUP_ENDPOINT = re.compile(r"^https?://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?/?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")

# Role variables that carry a secret: set with no_log.
SECRET_VARS = frozenset(
    [secret[1] for secret in SECRETS]
    # A database URI carries its password.
    + [
        "s3_iam_admin_access_key",
        "s3_iam_admin_secret_key",
        "mlflow_server_auth_users",
        "mlflow_server_backend_store_uri",
        "mlflow_server_auth_oidc_database_uri",
        "nginx_proxy_acme_eab_hmac_key",
    ]
)

_ACME_DIRECTORY = re.compile(r"^https://[^/\s]+(/\S*)?$")

_IPV4 = re.compile(r"^([0-9]{1,3}\.){3}[0-9]{1,3}$")
_IPV6 = re.compile(r"^[0-9a-fA-F:]*:[0-9a-fA-F:]*$")


def is_ip_address(value):
    """True for a literal IPv4 or IPv6 address (what mlops_private_address must be)."""
    if not isinstance(value, str) or not (_IPV4.match(value) or _IPV6.match(value)):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host_cidr(address):
    """The one-address network of an IP address: 10.0.0.5 -> 10.0.0.5/32, fd00::5 -> fd00::5/128."""
    if not is_ip_address(address):
        raise AnsibleFilterError("host_cidr: %r is not an IP address" % (address,))
    return "%s/%d" % (address, 32 if ":" not in address else 128)


def upstream_address(host, port):
    """host:port as nginx and URLs want it: an IPv6 address in brackets."""
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "%s:%s" % (host, port)


class Layout(object):
    """One inventory's layout. hostvars: host -> its variables (only what the user set)."""

    def __init__(self, hostvars, groups):
        self.hostvars = hostvars
        self.groups = groups
        self._derived = {}
        self._hostvars = {}

    def group(self, name):
        return list(self.groups.get(name) or [])

    def first(self, name):
        hosts = self.group(name)
        return hosts[0] if hosts else ""

    def _vars(self, host):
        # Each lookup in Ansible's hostvars computes the host's variables anew: once per host.
        if host not in self._hostvars:
            try:
                self._hostvars[host] = self.hostvars[host]
            except KeyError:
                self._hostvars[host] = {}
        return self._hostvars[host]

    def is_set(self, host, name):
        return name in self._vars(host)

    def get(self, host, name, default=None):
        hostvars = self._vars(host)
        return hostvars.get(name, default)

    def effective(self, host, name):
        """What the role will use on host: the user's value, else the derived one, else the role default."""
        if self.is_set(host, name):
            return self.get(host, name)
        derived = self.derive(host)
        return derived[name] if name in derived else ROLE_DEFAULTS.get(name)

    def others(self, group, host):
        return [member for member in self.group(group) if member != host]

    def private_address(self, host):
        return self.get(host, "mlops_private_address")

    def engine(self):
        """mlops_db_engine of the mlflow_db host: postgresql (the default) or mariadb."""
        db_host = self.first(DB)
        engine = (self.get(db_host, "mlops_db_engine") if db_host else None) or "postgresql"
        if engine not in ENGINES:
            raise AnsibleFilterError(
                "mlops_db_engine is %r on %s; it must be one of: %s" % (engine, db_host, ", ".join(sorted(ENGINES)))
            )
        return engine

    def auth_mode(self, host):
        """mlops_auth on host: basic (the default) or oidc; mlops_mlflow_auth belongs to basic only."""
        mode = self.get(host, "mlops_auth") or "basic"
        if mode not in AUTH_MODES:
            raise AnsibleFilterError(
                "mlops_auth is %r on %s; it must be one of: %s" % (mode, host, ", ".join(AUTH_MODES))
            )
        if mode == "oidc" and self.get(host, "mlops_mlflow_auth", False):
            raise AnsibleFilterError(
                "mlops_mlflow_auth is true on %s, with mlops_auth: oidc: MLflow's basic-auth app and "
                "mlflow-oidc-auth exclude each other (oidc grants permissions by group); "
                "leave mlops_mlflow_auth unset" % (host,)
            )
        return mode

    def condition(self, when, host):
        if when == "always":
            return True
        if when in AUTH_MODES:
            return self.auth_mode(host) == when
        if when == "any_auth":
            return self.auth_mode(host) == "oidc" or bool(self.get(host, "mlops_mlflow_auth", False))
        if when in ENGINES:
            return when == self.engine()
        if when == "db_host":
            return bool(self.first(DB))
        if when == "store_host":
            return bool(self.first(STORE))
        if when == "auth":
            return bool(self.get(host, "mlops_mlflow_auth", False))
        if when == "backup":
            return bool(self.get(host, "mlops_backup_target_bucket"))
        if when == "backup_pg":
            return bool(self.get(host, "mlops_backup_target_bucket")) and self.engine() == "postgresql"
        raise AnsibleFilterError("layout: unknown condition %r" % (when,))

    # Hosts that other hosts of the layout connect to, so they need mlops_private_address.
    def reached(self):
        db, store, servers, proxies = self.group(DB), self.group(STORE), self.group(SERVER), self.group(PROXY)
        reached = []
        if set(servers) - set(db):
            reached += db
        if set(servers) - set(store):
            reached += store
        if db:
            reached += [server for server in servers if server not in db]
        reached += servers if len(proxies) > 1 else [server for server in servers if server not in proxies]
        # Prometheus on a monitoring host scrapes the exporters of every other host of the layout.
        reached += [host for host in self.monitored() if self.scraped_from_elsewhere(host)]
        return [host for index, host in enumerate(reached) if host not in reached[:index]]

    def monitored(self):
        """The hosts a mlflow_monitoring host scrapes: every host of the layout's groups, once."""
        if not self.group(MONITORING):
            return []
        if len(self.group(MONITORING)) > 1:
            raise AnsibleFilterError(
                "The group mlflow_monitoring takes one host (Prometheus and its alert rules), got: %s"
                % ", ".join(self.group(MONITORING))
            )
        hosts = [host for group in (DB, STORE, SERVER, PROXY) for host in self.group(group)]
        return [host for index, host in enumerate(hosts) if host not in hosts[:index]]

    def scraped_from_elsewhere(self, host):
        """True when a monitoring host other than host scrapes it (its exporters listen privately)."""
        return bool(self.others(MONITORING, host))

    def missing(self):
        """The secrets nobody defined: [{'name': mlops var, 'hosts': [...], 'why': text}], in order."""
        found = {}
        for knob, role_var, group, when, why in SECRETS:
            for host in self.group(group):
                if not self.condition(when, host) or self.is_set(host, role_var):
                    continue
                value = self.get(host, knob)
                if value is None or value == "" or value == []:
                    entry = found.setdefault(knob, {"name": knob, "hosts": [], "why": why})
                    if host not in entry["hosts"]:
                        entry["hosts"].append(host)
        return list(found.values())

    def _upstream(self, server):
        address = self.effective(server, "mlflow_server_host")
        if address in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached on the private address
            address = self.private_address(server) or server
        return upstream_address(address, self.effective(server, "mlflow_server_port"))

    def _backup_sources(self, host):
        """The backup role's sources on an mlflow server: the artifact store and SQLite files mlflow uses."""
        out = {"backup_artifacts_enabled": host == self.first(SERVER)}  # the servers share one store
        home = self.effective(host, "mlflow_server_home")
        # The auth app whose SQLite database is backed up with the stores: basic, oidc or none.
        app = (
            (self.effective(host, "mlflow_server_auth_type") or "basic")
            if self.effective(host, "mlflow_server_auth_enabled")
            else None
        )
        destination = self.effective(host, "mlflow_server_artifacts_destination") or home + "/artifacts"
        if destination.startswith("s3://"):
            bucket, _slash, prefix = destination[len("s3://") :].partition("/")
            out["backup_artifacts_source_bucket"] = bucket
            out["backup_artifacts_source_prefix"] = prefix.strip("/")
            out["backup_artifacts_source_endpoint_url"] = self.effective(host, "mlflow_server_s3_endpoint_url") or ""
            out["backup_artifacts_source_region"] = self.effective(host, "mlflow_server_s3_region")
            # Its key is mlflow's, handed over by the layout role's tasks (roles/layout/tasks/main.yml).
        else:
            out["backup_artifacts_source_dir"] = destination
        if self.effective(host, "mlflow_server_backend") == "sqlite" and not self.effective(
            host, "mlflow_server_backend_store_uri"
        ):
            path = self.effective(host, "mlflow_server_sqlite_path") or home + "/mlflow.db"
            stores = [{"name": "mlflow", "path": path}]
            # MLflow's basic-auth app keeps its users in the backend store's database, unless that is
            # SQLite: then in basic_auth.db beside it.
            if app == "basic":
                stores += self._sqlite_store(host, "basic_auth", "mlflow_server_auth_database_uri")
            out["backup_stores"] = stores
        if app == "oidc":
            # mlflow-oidc-auth keeps users, groups, grants and tokens in a database of its own,
            # SQLite in the server's home unless mlops_oidc_database_uri names another, whatever the backend.
            oidc = self._sqlite_store(host, "oidc_auth", "mlflow_server_auth_oidc_database_uri")
            if oidc:
                out["backup_stores"] = out.get("backup_stores", []) + oidc
        return out

    def _backup_target(self, host, memberships):
        """The off-host backup target from the mlops_backup_target_* knobs, {} when no bucket is named.

        The database host ships its WAL and base backups there with pgBackRest (under
        <prefix>/pgbackrest, encrypted with mlops_backup_target_cipher_pass); the mlflow servers ship the
        artifact store and the SQLite stores there with the backup role (under <prefix>/).
        """
        bucket = self.get(host, "mlops_backup_target_bucket") or ""
        if not bucket or not ({DB, SERVER} & set(memberships)):
            return {}
        knob = {name: self.get(host, name, default) for name, default in BACKUP_TARGET_DEFAULTS.items()}
        endpoint = self.get(host, "mlops_backup_target_endpoint_url") or ""
        prefix = knob["mlops_backup_target_prefix"]
        parsed = _BACKUP_ENDPOINT.match(endpoint)
        if endpoint and not parsed:
            raise AnsibleFilterError(
                "mlops_backup_target_endpoint_url is %r on %s: give an https://host[:port] URL without a path, "
                "or leave it empty for AWS S3" % (endpoint, host)
            )
        if not _BUCKET.match(bucket):
            raise AnsibleFilterError("mlops_backup_target_bucket is %r on %s: not an S3 bucket name" % (bucket, host))
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise AnsibleFilterError(
                "mlops_backup_target_prefix is %r on %s: a key prefix such as mlflow or backups/mlflow, "
                "without a leading or trailing slash" % (prefix, host)
            )
        out = {}
        if DB in memberships:
            if self.engine() != "postgresql":
                raise AnsibleFilterError(
                    "mlops_backup_target_bucket is set with mlops_db_engine %s on %s: off-host backups of the "
                    "database are PostgreSQL's (pgBackRest, WAL archiving); MariaDB keeps its nightly dumps on the "
                    "host. Use PostgreSQL, or leave mlops_backup_target_bucket unset" % (self.engine(), host)
                )
            if endpoint.startswith("http://"):
                raise AnsibleFilterError(
                    "mlops_backup_target_endpoint_url is %r on %s, the database host: pgBackRest reaches S3 over "
                    "HTTPS only; give the target's https:// URL" % (endpoint, host)
                )
            region = knob["mlops_backup_target_region"]
            out.update(
                {
                    "postgres_pgbackrest_enabled": True,
                    "postgres_pgbackrest_s3_bucket": bucket,
                    "postgres_pgbackrest_s3_region": region,
                    # An S3-compatible store by path (bucket.host needs wildcard DNS); AWS by host.
                    "postgres_pgbackrest_s3_endpoint": parsed.group(1) if parsed else "s3.%s.amazonaws.com" % region,
                    "postgres_pgbackrest_s3_port": int(parsed.group(2) or 443) if parsed else 443,
                    "postgres_pgbackrest_s3_uri_style": "path" if parsed else "host",
                    "postgres_pgbackrest_repo_path": "/%s/pgbackrest" % prefix,
                }
            )
        if SERVER in memberships:
            out.update(
                {
                    "backup_enabled": True,
                    "backup_target_endpoint_url": endpoint.rstrip("/"),
                    "backup_target_region": knob["mlops_backup_target_region"],
                    "backup_target_bucket": bucket,
                    "backup_target_prefix": prefix,
                    "backup_target_provider": "Other" if endpoint else "AWS",
                }
            )
        return out

    def origins(self, host):
        """Derived role variable -> the knob of the user's it comes from, where it comes from one."""
        derived = self.derive(host)
        pairs = [(role_var, knob) for _group, knob, role_var in KNOBS]
        pairs += [(role_var, knob) for knob, role_var, _required in OIDC_KNOBS] + list(ORIGINS)
        return {role_var: knob for role_var, knob in pairs if role_var in derived and self.is_set(host, knob)}

    def _acme(self, host, public_name):
        """ACME certificates for the public name on the proxy, {} unless mlops_acme_directory_url is set.

        http-01 reaches the name on port 80, so one proxy answers for it: with several, the
        challenge would land on whichever the name resolves to, and the others never get theirs.
        """
        url = self.get(host, "mlops_acme_directory_url") or ""
        if not url:
            return {}
        if not isinstance(url, str) or not _ACME_DIRECTORY.match(url):
            raise AnsibleFilterError(
                "mlops_acme_directory_url is %r on %s: an ACME directory is an https:// URL (RFC 8555), such as "
                "https://acme-v02.api.letsencrypt.org/directory" % (url, host)
            )
        if len(self.group(PROXY)) > 1:
            raise AnsibleFilterError(
                "mlops_acme_directory_url is set with %d hosts in mlflow_proxy: ACME's http-01 challenge for %s "
                "reaches one of them only. Keep one proxy, or give the proxies a certificate of your own "
                "(nginx_proxy_tls_certificate)" % (len(self.group(PROXY)), public_name)
            )
        if is_ip_address(public_name):
            raise AnsibleFilterError(
                "mlops_acme_directory_url is set, but the public name is the IP address %s: ACME issues for a "
                "DNS name. Set mlops_public_hostname to the name clients use" % public_name
            )
        return {"nginx_proxy_acme_enabled": True, "nginx_proxy_acme_domains": [public_name]}

    def _sqlite_store(self, host, name, uri_var):
        """[{name, path}] of an auth app's database (<home>/<name>.db unless uri_var says), [] when not SQLite."""
        uri = self.effective(host, uri_var) or "sqlite:///%s/%s.db" % (self.effective(host, "mlflow_server_home"), name)
        return [{"name": name, "path": uri[len("sqlite:///") :]}] if uri.startswith("sqlite:////") else []

    def _oidc(self, host, public_name):
        """An mlflow server's variables for mlops_auth: oidc (mlflow-oidc-auth as the server's app)."""
        out = {"mlflow_server_auth_enabled": True, "mlflow_server_auth_type": "oidc"}
        for knob, role_var, required in OIDC_KNOBS:
            value = self.get(host, knob)
            if value not in (None, "", [], {}):
                out[role_var] = value
            elif required and not self.is_set(host, role_var):
                raise AnsibleFilterError("mlops_auth is oidc on %s: set %s (%s)" % (host, knob, required))
        if len(self.group(SERVER)) > 1 and not (
            self.get(host, "mlops_oidc_database_uri") or self.is_set(host, "mlflow_server_auth_oidc_database_uri")
        ):
            raise AnsibleFilterError(
                "mlops_auth is oidc with %d mlflow servers: set mlops_oidc_database_uri to a database they share "
                "(each would keep its own SQLite users, grants and tokens)" % len(self.group(SERVER))
            )
        # The login callback the provider sends browsers back to: the public site.
        port = self.public_https_port(host)
        out["mlflow_server_auth_oidc_public_url"] = "https://%s%s" % (
            public_name,
            "" if int(port) == 443 else ":%s" % port,
        )
        return out

    def public_https_port(self, host):
        """The HTTPS port browsers reach host's public site on: its proxy's published port, as nginx_proxy sees it."""
        proxy = host if host in self.group(PROXY) else self.first(PROXY) or host
        # The user's own role variables win, as they do in the nginx_proxy role.
        for name in ("nginx_proxy_public_https_port", "mlops_public_https_port", "nginx_proxy_https_port"):
            if self.is_set(proxy, name) and self.get(proxy, name) not in (None, ""):
                return int(self.get(proxy, name))
        return 443

    def _exporters(self, host, memberships):
        """With a mlflow_monitoring host: host's exporters on, on loopback or its private address."""
        if host not in self.monitored():
            return {}
        monitor = self.first(MONITORING)
        bind = self.private_address(host) if self.scraped_from_elsewhere(host) else "127.0.0.1"
        out = {
            "common_node_exporter_enabled": True,
            "common_node_exporter_listen": upstream_address(
                bind, self.effective(monitor, "monitoring_node_exporter_port")
            ),
        }
        for group in memberships:
            for enabled, listen, port_var in EXPORTERS.get(group, []):
                if group == DB and self.engine() != "postgresql":
                    continue  # no MariaDB exporter yet: the monitoring role scrapes none there
                out[enabled] = True
                if listen:
                    out[listen] = upstream_address(bind, self.effective(monitor, port_var)) if port_var else bind
        return out

    def derive(self, host):
        """Every role variable the layout sets on host (before the user's own values are taken out)."""
        if host in self._derived:
            return self._derived[host]
        self._derived[host] = derived = {}
        memberships = [group for group in (DB, STORE, SERVER, PROXY, S3_IAM) if host in self.group(group)]
        engine = self.engine()
        other_roles = tuple(role + "_" for name, (role, _backend) in ENGINES.items() if name != engine)
        for group, knob, role_var in KNOBS:
            if group == DB and role_var.startswith(other_roles):
                continue
            if group in memberships and self.is_set(host, knob):
                derived[role_var] = self.get(host, knob)
        profile = self.get(host, "mlops_profile", "default")
        if profile not in PROFILES:
            raise AnsibleFilterError(
                "mlops_profile is %r on %s; it must be one of: %s" % (profile, host, ", ".join(sorted(PROFILES)))
            )
        for group in memberships:
            derived.update(PROFILES[profile].get(group, {}))

        db_host, store_host, iam_host = self.first(DB), self.first(STORE), self.first(S3_IAM)
        remote_servers = self.others(SERVER, host)
        public_name = self.get(host, "mlops_public_hostname") or self.first(PROXY) or host

        if DB in memberships and engine == "mariadb":
            derived["mariadb_bind_addresses"] = ["127.0.0.1"] + ([self.private_address(host)] if remote_servers else [])
            # One account host per server: MariaDB matches the client's address exactly.
            derived["mariadb_client_hosts"] = [self.private_address(s) for s in remote_servers]
        elif DB in memberships:
            derived["postgres_listen_addresses"] = ["127.0.0.1"] + (
                [self.private_address(host)] if remote_servers else []
            )
            derived["postgres_client_networks"] = [host_cidr(self.private_address(s)) for s in remote_servers]
        if STORE in memberships:
            derived["object_store_bind_address"] = self.private_address(host) if remote_servers else "127.0.0.1"
        if S3_IAM in memberships:
            derived["s3_iam_mode"] = "instance_profile" if self.get(host, "mlops_s3_instance_role") else "access_key"
        if SERVER in memberships:
            uri = self.get(host, "mlops_db_uri") or ""
            if db_host:
                derived["mlflow_server_backend"] = ENGINES[engine][1]
                if engine == "mariadb":
                    derived["mlflow_server_db_options"] = {"charset": "utf8mb4"}
            elif uri.startswith("postgresql"):
                derived["mlflow_server_backend"] = "postgresql"
            elif uri.startswith("mysql"):
                derived["mlflow_server_backend"] = "mysql"
            else:
                derived["mlflow_server_backend"] = "sqlite"
            if db_host:
                derived["mlflow_server_db_host"] = (
                    "127.0.0.1" if db_host == host else (self.private_address(db_host) or db_host)
                )
                if self.is_set(host, "mlops_db_password"):
                    derived["mlflow_server_db_password"] = self.get(host, "mlops_db_password")
            elif uri:
                # A URI without a driver gets the one the role installs.
                derived["mlflow_server_backend_store_uri"] = with_driver(uri)
            if store_host:
                derived["mlflow_server_artifacts_destination"] = "s3://%s/artifacts" % self.effective(
                    store_host, "object_store_bucket"
                )
                derived["mlflow_server_s3_endpoint_url"] = "http://" + upstream_address(
                    self.effective(store_host, "object_store_bind_address"),
                    self.effective(store_host, "object_store_s3_port"),
                )
                for knob, role_var in (
                    ("mlops_s3_mlflow_access_key", "mlflow_server_s3_access_key"),
                    ("mlops_s3_mlflow_secret_key", "mlflow_server_s3_secret_key"),
                ):
                    if self.is_set(host, knob):
                        derived[role_var] = self.get(host, knob)
            elif iam_host:
                derived["mlflow_server_artifacts_destination"] = "s3://%s/%s" % (
                    self.effective(iam_host, "s3_iam_bucket"),
                    self.effective(iam_host, "s3_iam_prefix"),
                )
                endpoint = self.effective(iam_host, "s3_iam_endpoint_url")
                if endpoint:
                    derived["mlflow_server_s3_endpoint_url"] = endpoint
                if self.effective(iam_host, "s3_iam_mode") == "access_key":
                    # The key exists once s3_iam ran: site.yml hands it over after that play.
                    derived["mlops_layout_s3_key_host"] = iam_host
            # Private when a proxy, or Prometheus on a monitoring host, on another host reaches it.
            private = self.others(PROXY, host) or (host in self.monitored() and self.scraped_from_elsewhere(host))
            derived["mlflow_server_host"] = self.private_address(host) if private else "127.0.0.1"
            derived["mlflow_server_public_hostnames"] = [public_name]
            # One purge per store: mlflow gc on the first server only (they share the store).
            if self.is_set(host, "mlops_gc_older_than") and host == self.first(SERVER):
                derived["mlflow_server_gc_enabled"] = True
                derived["mlflow_server_gc_older_than"] = self.get(host, "mlops_gc_older_than")
            if self.auth_mode(host) == "oidc":
                derived.update(self._oidc(host, public_name))
            else:
                auth = bool(self.get(host, "mlops_mlflow_auth", False))
                derived["mlflow_server_auth_enabled"] = auth
                if auth and self.is_set(host, "mlops_users"):
                    derived["mlflow_server_auth_users"] = self.get(host, "mlops_users")
            derived.update(self._backup_sources(host))
        if PROXY in memberships:
            derived["nginx_proxy_upstreams"] = [self._upstream(server) for server in self.group(SERVER)]
            derived["nginx_proxy_server_name"] = public_name
            derived.update(self._acme(host, public_name))
            if self.auth_mode(host) == "oidc":
                derived["nginx_proxy_auth"] = "oidc"
            elif self.is_set(host, "mlops_users"):
                users = list(self.get(host, "mlops_users") or [])
                if self.get(host, "mlops_mlflow_auth", False):
                    # The auth app's admin logs in through nginx too.
                    users.append(
                        {
                            "name": self.effective(host, "mlflow_server_auth_admin_username"),
                            "password": self.get(host, "mlops_mlflow_admin_password", ""),
                        }
                    )
                derived["nginx_proxy_users"] = users
        derived.update(self._backup_target(host, memberships))
        derived.update(self._exporters(host, memberships))
        return derived


def layout(host, hostvars, groups, secrets=False):
    """The role variables the layout sets on host, less those the user set there.

    secrets: False gives the plain variables (and mlops_layout_origins: which knob set which of all
    of them), True only those that carry a secret.
    """
    plan = Layout(hostvars, groups)
    out = {
        name: value
        for name, value in plan.derive(host).items()
        if not plan.is_set(host, name) and (name in SECRET_VARS) == bool(secrets)
    }
    if not secrets:
        # Which knob set which role variable: the roles' checks name the knob (a name, never a value).
        origins = {name: knob for name, knob in plan.origins(host).items() if not plan.is_set(host, name)}
        if origins:
            out["mlops_layout_origins"] = origins
    return out


def layout_missing(hostvars, groups):
    """The mlops_* secrets the layout needs and nobody defined (see Layout.missing)."""
    return Layout(hostvars, groups).missing()


def layout_reached(hostvars, groups):
    """The hosts other hosts of the layout connect to (they need mlops_private_address)."""
    return Layout(hostvars, groups).reached()


class FilterModule(object):
    def filters(self):
        return {
            "layout": layout,
            "layout_missing": layout_missing,
            "layout_reached": layout_reached,
            "host_cidr": host_cidr,
            "upstream_address": upstream_address,
        }
