"""A TLS front for a plain-HTTP test server on 127.0.0.1 (pgBackRest speaks S3 over HTTPS only).

``TlsProxy(upstream_port, tmp_dir)`` makes a self-signed certificate for 127.0.0.1 (``ca_file``
is the certificate itself), listens on 127.0.0.1:<free port> and pipes every accepted TLS
connection, byte for byte, to the upstream port: the Host header, and so an S3 signature,
reaches the upstream unchanged. ``stop()`` closes the listener.
"""

from __future__ import annotations

import datetime
import ipaddress
import selectors
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                # pgBackRest 2.45 matches the host against DNS names only, even for an address.
                [
                    x509.DNSName("127.0.0.1"),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.chmod(0o644)
    return cert_file, key_file


def _relay(client: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Copy bytes both ways between one TLS client and its upstream, in this one thread.

    An SSLSocket must not be read in one thread while another writes to it or shuts it down:
    ``SSLSocket.shutdown`` drops the SSL object under a concurrent ``recv`` and CPython crashes
    (a segfault in CI). So one thread owns both sockets and waits on both with a selector.
    """
    with selectors.DefaultSelector() as selector, client, upstream:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            # TLS may hold decrypted bytes the kernel no longer reports as readable.
            ready = [client] if client.pending() else [key.fileobj for key, _ in selector.select()]
            for src in ready:
                dst = upstream if src is client else client
                try:
                    data = src.recv(65536)
                    if not data:
                        return
                    dst.sendall(data)
                except (OSError, ssl.SSLError):
                    return


class TlsProxy:
    def __init__(self, upstream_port: int, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        self.ca_file, key_file = _self_signed(directory)
        self.upstream_port = upstream_port
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.ca_file, key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            client = self._context.wrap_socket(raw, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except (OSError, ssl.SSLError):
            raw.close()
            return
        _relay(client, upstream)

    def stop(self) -> None:
        self._listener.close()
