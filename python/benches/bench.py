"""Per-call cost of the package against ``cryptography`` used directly, in
one process, one run: ratios, not absolute times (on a shared machine the
times are noise; the ratios of interleaved measurements are not).

    python python/benches/bench.py [--quick] [--check]

Measures, each as the median of interleaved rounds:
- encrypt and decrypt of a 32-byte value: ``SecretsManager.encrypt`` /
  ``decrypt`` (the whole Python API: live configuration check, audit hook
  check, native call) against ``cryptography.fernet.Fernet.encrypt`` /
  ``decrypt`` on a key already derived (target: at least 5x faster);
- the same through ``get_fernet(version)`` (the token codec alone);
- key derivation, PBKDF2-HMAC-SHA256 with 100 000 iterations, against
  ``cryptography``'s ``PBKDF2HMAC`` (reported, no target).

``--check`` exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import timeit
from typing import Callable, Dict, List, Tuple

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from secrets_manager import SecretsConfig, SecretsManager, _native

PASSWORD = "benchmark-password"
SALT = b"benchmark-salt-0"


def per_call(fn: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` calls."""
    return timeit.timeit(fn, number=number) / number


def compare(ours: Callable[[], object], theirs: Callable[[], object], number: int, rounds: int) -> Tuple[float, float]:
    """Median per-call times, measured in interleaved rounds so that load on
    the machine weighs on both alike."""
    a: List[float] = []
    b: List[float] = []
    for _ in range(rounds):
        a.append(per_call(ours, number))
        b.append(per_call(theirs, number))
    return statistics.median(a), statistics.median(b)


def python_kdf() -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=100_000)
    return kdf.derive(PASSWORD.encode())


def main() -> int:
    parser = argparse.ArgumentParser(description="secrets_manager against cryptography, per call")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    number, rounds, kdf_rounds = (2_000, 5, 3) if args.quick else (20_000, 11, 7)

    config = SecretsConfig(keys={"v1": {"key": PASSWORD, "salt": SALT}}, active_version="v1")
    manager = SecretsManager(config)
    value = os.urandom(32)
    _, token = manager.encrypt(value)  # derives and caches the key
    fernet = Fernet(base64.urlsafe_b64encode(python_kdf()))
    assert fernet.decrypt(token) == value and manager.decrypt(fernet.encrypt(value))[1] == value
    codec = manager.get_fernet("v1")
    their_token = fernet.encrypt(value)

    results: Dict[str, Tuple[float, float, float]] = {}
    results["encrypt 32 B (SecretsManager)"] = (*compare(lambda: manager.encrypt(value), lambda: fernet.encrypt(value), number, rounds), 5.0)
    results["decrypt 32 B (SecretsManager)"] = (*compare(lambda: manager.decrypt(token), lambda: fernet.decrypt(their_token), number, rounds), 5.0)
    results["encrypt 32 B (get_fernet)"] = (*compare(lambda: codec.encrypt(value), lambda: fernet.encrypt(value), number, rounds), 0.0)
    results["decrypt 32 B (get_fernet)"] = (*compare(lambda: codec.decrypt(token), lambda: fernet.decrypt(their_token), number, rounds), 0.0)
    results["PBKDF2 100k iterations"] = (
        *compare(lambda: _native.derive_key(PASSWORD.encode(), SALT, 100_000), python_kdf, 1, kdf_rounds),
        0.0,
    )

    missed = 0
    print(f"{'measurement':34} {'ours':>11} {'cryptography':>13} {'speed-up':>9}  target")
    for name, (ours, theirs, target) in results.items():
        ratio = theirs / ours
        verdict = "" if not target else (f">= {target:g}x ok" if ratio >= target else f">= {target:g}x MISSED")
        missed += bool(target) and ratio < target
        print(f"{name:34} {fmt(ours):>11} {fmt(theirs):>13} {ratio:8.1f}x  {verdict}")
    return 1 if args.check and missed else 0


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} us"


if __name__ == "__main__":
    sys.exit(main())
