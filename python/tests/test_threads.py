"""Concurrency: Python threads encrypting and decrypting while another
rotates; statistics stay exact and every token opens. And the GIL is let go
while keys are derived and large inputs are processed."""

from __future__ import annotations

import threading
import time

from secrets_manager import SecretsConfig, SecretsManager, _native

from conftest import FAST, fernet_for

THREADS = 8
ROUNDS = 300
ROTATIONS = 6


def test_eight_threads_while_one_rotates() -> None:
    config = SecretsConfig(keys={"v0": {"key": "p0", "salt": b"s0"}}, active_version="v0", kdf_iterations=FAST)
    manager = SecretsManager(config)
    made: list = []
    made_lock = threading.Lock()
    errors: list = []
    start = threading.Barrier(THREADS + 1)

    def worker(n: int) -> None:
        try:
            start.wait()
            mine = []
            for i in range(ROUNDS):
                message = b"%d:%d" % (n, i)
                version, token = manager.encrypt(message)
                assert manager.decrypt(token)[1] == message
                mine.append((version, token, message))
            with made_lock:
                made.extend(mine)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def rotator() -> None:
        try:
            start.wait()
            for r in range(1, ROTATIONS + 1):
                time.sleep(0.005)
                manager.rotate_to_new_version(f"v{r}", f"p{r}", b"s%d" % r)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    threads.append(threading.Thread(target=rotator))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    stats = manager.get_statistics()
    assert stats["encryptions"] == THREADS * ROUNDS
    assert stats["decryptions"] == THREADS * ROUNDS
    assert manager.get_active_version() == f"v{ROTATIONS}"
    assert len(made) == THREADS * ROUNDS
    # Every token opens, with the version that made it, here and in Python.
    for version, token, message in made:
        assert manager.decrypt(token) == (version, message)
    assert manager.get_statistics()["decryptions"] == 2 * THREADS * ROUNDS
    used = {version for version, _, _ in made}
    assert used <= {f"v{r}" for r in range(ROTATIONS + 1)}
    for version in used:
        r = int(version[1:])
        python = fernet_for(f"p{r}", b"s%d" % r, FAST)
        _, token, message = next(m for m in made if m[0] == version)
        assert python.decrypt(token) == message


def spin_share(action) -> float:
    """The share of its free-running speed that a Python loop in another
    thread keeps while ``action`` runs: near 0 if ``action`` holds the GIL
    throughout, near 1 if it lets go (each measured against the same loop
    while the main thread sleeps for as long)."""
    stop = threading.Event()
    ticks = [0]

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1

    def measure(run) -> tuple:
        before, started = ticks[0], time.perf_counter()
        run()
        return ticks[0] - before, time.perf_counter() - started

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.02)
        busy, seconds = measure(action)
        free, _ = measure(lambda: time.sleep(seconds))
    finally:
        stop.set()
        spinner.join()
    return busy / max(free, 1)


def test_the_gil_probe_tells_held_from_released() -> None:
    import random

    data = [random.random() for _ in range(1_000_000)]
    assert spin_share(lambda: sorted(data)) < 0.1  # list.sort holds the GIL
    assert spin_share(lambda: time.sleep(0.2)) > 0.5


def test_key_derivation_releases_the_gil() -> None:
    config = SecretsConfig(keys={"v1": {"key": "pw", "salt": b"s"}}, active_version="v1", kdf_iterations=1_500_000)
    manager = SecretsManager(config)
    assert spin_share(lambda: manager.encrypt(b"first use derives the key")) > 0.2
    config.keys["v2"] = {"key": "pw2", "salt": b"t"}
    assert spin_share(lambda: manager.rotate_to_new_version("v3", "pw3", b"u")) > 0.2
    assert spin_share(lambda: manager.get_fernet("v2")) > 0.2


def test_large_inputs_release_the_gil() -> None:
    config = SecretsConfig(keys={"v1": {"key": "pw", "salt": b"s"}}, active_version="v1", kdf_iterations=FAST)
    manager = SecretsManager(config)
    manager.encrypt(b"warm")
    big = b"x" * (48 * 1024 * 1024)
    assert len(big) > _native.SMALL_INPUT
    tokens = []
    assert spin_share(lambda: tokens.append(manager.encrypt(big)[1])) > 0.2
    assert spin_share(lambda: manager.decrypt(tokens[0])) > 0.2
