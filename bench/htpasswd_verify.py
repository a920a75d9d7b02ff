"""Per-verify cost of each htpasswd scheme, as nginx pays it on every request.

Run: .venv/bin/python bench/htpasswd_verify.py [--repeat N]
Prints the median verify time per scheme/cost and its ratio to sha512_crypt at
5000 rounds (the module's default), measured side by side in one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from passlib import hash as h

CASES = [
    ("apr_md5_crypt", h.apr_md5_crypt),
    ("sha256_crypt rounds=5000", h.sha256_crypt.using(rounds=5000)),
    ("sha512_crypt rounds=5000", h.sha512_crypt.using(rounds=5000)),
    ("sha512_crypt rounds=656000", h.sha512_crypt.using(rounds=656000)),
    ("bcrypt cost=5", h.bcrypt.using(rounds=5, ident="2y")),
    ("bcrypt cost=10", h.bcrypt.using(rounds=10, ident="2y")),
    ("bcrypt cost=12", h.bcrypt.using(rounds=12, ident="2y")),
]


def median_verify_ms(handler, repeat: int) -> float:
    hashed = handler.hash("benchmark-password")
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        handler.verify("benchmark-password", hashed)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"# {platform.machine()} {platform.processor() or ''} Python {platform.python_version()}")
    results = {name: median_verify_ms(handler, args.repeat) for name, handler in CASES}
    base = results["sha512_crypt rounds=5000"]
    print(f"{'scheme':32} {'ms/verify':>10} {'x default':>10}")
    for name, ms in results.items():
        print(f"{name:32} {ms:10.2f} {ms / base:10.1f}")


if __name__ == "__main__":
    main()
