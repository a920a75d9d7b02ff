"""A real ACME server for tests: Debian's pebble on 127.0.0.1, over TLS with a test CA of its own.

``Pebble(http_port).start()`` writes a TLS certificate for localhost/127.0.0.1 signed by a fresh
test CA (``tls_ca`` is that CA's PEM file: the bundle an ACME client needs), a pebble config whose
``httpPort`` is `http_port` (where pebble's validator connects for http-01: the nginx under test),
starts ``pebble -config`` with PEBBLE_VA_NOSLEEP=1 (no artificial delays; validation stays real)
and PEBBLE_WFE_NONCEREJECT=0 (no good nonce refused on purpose),
and waits for its directory. With ``eab`` ({key id: base64url HMAC key}) every new account must carry an
external account binding to one of those keys. ``root_pem()`` is the root that signs the certificates pebble issues,
from its management port (/roots/0; regenerated on every start).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from ipaddress import IPv4Address
from pathlib import Path

from conftest import find_free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_tls_pair(directory: Path) -> tuple[Path, Path, Path]:
    """(CA pem, server cert pem, server key pem): a test CA and a localhost certificate it signs."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("pebble test TLS CA"))
        .issuer_name(_name("pebble test TLS CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "tls-ca.pem", directory / "tls.pem", directory / "tls.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Pebble:
    def __init__(self, http_port: int, eab: dict[str, str] | None = None):
        self.http_port = http_port
        self.eab = eab or {}  # key id -> base64url HMAC key: new accounts must be bound to one
        self.dir = Path(tempfile.mkdtemp(prefix="pebble-test-"))
        self.port = find_free_port()
        self.management_port = find_free_port()
        self.proc: subprocess.Popen | None = None
        self.tls_ca, self._cert, self._key = write_tls_pair(self.dir)

    @property
    def directory_url(self) -> str:
        return f"https://localhost:{self.port}/dir"

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls_ca))

    def _get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, context=self._context(), timeout=10) as answer:
            return answer.read()

    def start(self) -> Pebble:
        config = self.dir / "pebble-config.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.management_port}",
                        "certificate": str(self._cert),
                        "privateKey": str(self._key),
                        "httpPort": self.http_port,
                        "tlsPort": find_free_port(),
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": bool(self.eab),
                        "externalAccountMACKeys": self.eab,
                    }
                }
            )
        )
        # PEBBLE_WFE_NONCEREJECT=0: pebble otherwise refuses 5 % of good nonces on purpose, and
        # Debian's certbot 2.1 gives up after two in a row (seen in CI: badNonce, then a crash).
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)  # validation must be real
        self.log = open(self.dir / "pebble.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PEBBLE, "-config", str(config)], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self._get(self.directory_url)
                return self
            except OSError:
                time.sleep(0.1)
        log = (self.dir / "pebble.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"pebble did not start:\n{log}")

    def root_pem(self) -> bytes:
        return self._get(f"https://localhost:{self.management_port}/roots/0")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
