"""Per-verify cost of each htpasswd scheme, as nginx pays it on every auth_basic request.

Run: .venv/bin/python bench/htpasswd_verify.py [--repeat N]

For each scheme/cost it prints the median time of one verify with passlib (what the
mlops.mlflow.htpasswd module uses) and with the system's crypt() from libcrypt (what nginx
calls, inside its event loop), plus the ratio to the module's default (sha512_crypt at
5000 rounds). Not run in CI; the numbers go into the module's DOCUMENTATION notes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import platform
import statistics
import time
from pathlib import Path

from passlib import hash as h

PASSWORD = "benchmark-password"
DEFAULT_CASE = "sha512_crypt rounds=5000"
CASES = [
    ("apr_md5_crypt", h.apr_md5_crypt),
    ("sha256_crypt rounds=5000", h.sha256_crypt.using(rounds=5000)),
    (DEFAULT_CASE, h.sha512_crypt.using(rounds=5000)),
    ("sha512_crypt rounds=50000", h.sha512_crypt.using(rounds=50000)),
    ("sha512_crypt rounds=656000", h.sha512_crypt.using(rounds=656000)),
    ("bcrypt cost=5", h.bcrypt.using(rounds=5, ident="2y")),
    ("bcrypt cost=8", h.bcrypt.using(rounds=8, ident="2y")),
    ("bcrypt cost=10", h.bcrypt.using(rounds=10, ident="2y")),
    ("bcrypt cost=12", h.bcrypt.using(rounds=12, ident="2y")),
]


def _libcrypt():
    """crypt(3) from libcrypt (libxcrypt on Debian), or None where it is missing."""
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.crypt.restype = ctypes.c_char_p
    return lib.crypt


def _median_ms(func, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="verifies per case (median is printed)")
    args = parser.parse_args()
    crypt = _libcrypt()

    rows = []
    for name, handler in CASES:
        hashed = handler.hash(PASSWORD)
        passlib_ms = _median_ms(lambda handler=handler, hashed=hashed: handler.verify(PASSWORD, hashed), args.repeat)
        libcrypt_ms = None
        if crypt is not None and crypt(PASSWORD.encode(), hashed.encode()) == hashed.encode():
            libcrypt_ms = _median_ms(lambda hashed=hashed: crypt(PASSWORD.encode(), hashed.encode()), args.repeat)
        rows.append((name, passlib_ms, libcrypt_ms))

    base = dict((name, ms) for name, ms, _ in rows)[DEFAULT_CASE]
    print(f"# {platform.machine()}, {_cpu_model()}, {platform.platform()}, Python {platform.python_version()}")
    print(f"# passlib backends: sha512_crypt={h.sha512_crypt.get_backend()} bcrypt={h.bcrypt.get_backend()}")
    print(f"# median of {args.repeat} verifies; libcrypt '-' = this libcrypt cannot verify the hash")
    print(f"{'scheme':28} {'passlib ms':>10} {'libcrypt ms':>12} {'x default':>10}")
    for name, passlib_ms, libcrypt_ms in rows:
        lc = f"{libcrypt_ms:12.2f}" if libcrypt_ms is not None else f"{'-':>12}"
        print(f"{name:28} {passlib_ms:10.2f} {lc} {passlib_ms / base:10.1f}")


if __name__ == "__main__":
    main()
