"""Generates tests/data/fernet_python-cryptography.json with Python `cryptography`.

Run through `cargo xtask vectors` (or `--check` to fail on drift). Every value
is deterministic: keys, IVs and messages are derived from fixed labels.
The JSON is written to stdout.
"""

import base64
import hashlib
import json
import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC


def stream(label: str, n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def key(label: str) -> str:
    return base64.urlsafe_b64encode(stream("key/" + label, 32)).decode()


def iv(label: str) -> bytes:
    return stream("iv/" + label, 16)


def raw_token(k: str, ts: int, iv_: bytes, body: bytes) -> str:
    """A token over an arbitrary (already padded, or deliberately bad) body."""
    raw = base64.urlsafe_b64decode(k)
    enc = Cipher(algorithms.AES(raw[16:]), modes.CBC(iv_)).encryptor()
    ct = enc.update(body) + enc.finalize()
    parts = b"\x80" + ts.to_bytes(8, "big") + iv_ + ct
    h = HMAC(raw[:16], hashes.SHA256())
    h.update(parts)
    return base64.urlsafe_b64encode(parts + h.finalize()).decode()


def mac_only_token(k: str, ts: int, iv_: bytes, ct: bytes) -> str:
    """A correctly MACed token around an arbitrary ciphertext."""
    raw = base64.urlsafe_b64decode(k)
    parts = b"\x80" + ts.to_bytes(8, "big") + iv_ + ct
    h = HMAC(raw[:16], hashes.SHA256())
    h.update(parts)
    return base64.urlsafe_b64encode(parts + h.finalize()).decode()


def python_decrypt(k: str, token: str, ttl, now):
    f = Fernet(k)
    try:
        if ttl is None:
            return f.decrypt(token).hex()
        return f.decrypt_at_time(token, ttl, now).hex()
    except (InvalidToken, ValueError, TypeError):
        return None


SIZES = (
    list(range(0, 50))
    + [63, 64, 65, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025]
    # Around the encoder's 3 KiB streaming chunk, with its 25-byte header.
    + [3046, 3047, 3048, 3049, 3071, 3072, 3073, 6119, 6120, 6121, 6143, 6144, 6145]
    + [4095, 4096, 4097, 10_000]
)
TIMESTAMPS = [0, 1, 499_162_800, 1_700_000_000, 2**32, 2**63, 2**64 - 1]


def generate():
    out = []
    for i, n in enumerate(SIZES):
        k = key(f"size/{n}")
        ts = TIMESTAMPS[i % len(TIMESTAMPS)]
        v = iv(f"size/{n}")
        msg = stream(f"msg/{n}", n)
        token = Fernet(k)._encrypt_from_parts(msg, ts, v).decode()
        out.append({"key": k, "timestamp": ts, "iv": v.hex(), "msg": msg.hex(), "token": token})
    return out


def decrypt_cases():
    k = key("ttl")
    other = key("other")
    base = 1_700_000_000
    token = Fernet(k)._encrypt_from_parts(b"ttl edge", base, iv("ttl")).decode()
    cases = []

    def case(desc, token, ttl, now, key_=k, expect_python=True):
        result = python_decrypt(key_, token, ttl, now)
        c = {"desc": desc, "key": key_, "token": token, "ttl": ttl, "now": now, "msg": result}
        cases.append(c)

    case("no ttl: any age", token, None, base + 10**9)
    case("no ttl: far future is not checked", token, None, 0)
    case("ttl: exactly ttl old", token, 60, base + 60)
    case("ttl: one second past ttl", token, 60, base + 61)
    case("ttl: zero ttl, same second", token, 0, base)
    case("ttl: zero ttl, one second later", token, 0, base + 1)
    case("skew: exactly 60 s in the future", token, 60, base - 60)
    case("skew: 61 s in the future", token, 60, base - 61)
    case("skew: applies with a huge ttl too", token, 2**64 - 1, base - 61)
    case("ttl: huge ttl never expires", token, 2**64 - 1, 2**64 - 1)
    for ts in (2**64 - 1, 2**64 - 60, 0):
        t = Fernet(k)._encrypt_from_parts(b"extreme", ts, iv(f"extreme/{ts}")).decode()
        case(f"timestamp {ts}, ttl 1 at now=u64::MAX", t, 1, 2**64 - 1)
        case(f"timestamp {ts}, ttl 1 at now=0", t, 1, 0)
        case(f"timestamp {ts}, ttl u64::MAX at now=0", t, 2**64 - 1, 0)
    case("wrong key", token, None, base, key_=other)

    raw = bytearray(base64.urlsafe_b64decode(token))
    for pos, desc in ((0, "version byte"), (5, "timestamp"), (12, "iv"), (30, "ciphertext"), (len(raw) - 1, "tag")):
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        case(f"flipped bit in {desc}", base64.urlsafe_b64encode(bytes(bad)).decode(), None, base)
    case("truncated by one block", base64.urlsafe_b64encode(bytes(raw[:-16])).decode(), None, base)
    case("only a header", base64.urlsafe_b64encode(bytes(raw[:9])).decode(), None, base)
    case("empty", "", None, base)
    case("ciphertext one byte short of a block", mac_only_token(k, base, iv("x"), stream("ct", 31)), None, base)
    case("ciphertext one byte past a block", mac_only_token(k, base, iv("y"), stream("ct", 17)), None, base)
    # Correctly MACed bodies whose padding is wrong: only a key holder can make these.
    case("padding byte zero", raw_token(k, base, iv("p0"), b"A" * 15 + b"\x00"), None, base)
    case("padding byte 17", raw_token(k, base, iv("p17"), b"A" * 15 + b"\x11"), None, base)
    case("inconsistent padding", raw_token(k, base, iv("pi"), b"A" * 13 + b"\x01\x03\x03"), None, base)
    case("full padding block", raw_token(k, base, iv("pf"), b"\x10" * 16), None, base)
    case("unpadded body one block", raw_token(k, base, iv("pu"), b"B" * 16), None, base)
    case("ciphertext must not be empty", raw_token(k, base, iv("pe"), b""), None, base)
    return cases


def strictness_cases():
    """Inputs Python's lenient base64 decoder accepts but we reject."""
    k = key("strict")
    token = Fernet(k)._encrypt_from_parts(b"strict", 1, iv("strict")).decode()
    std = token.replace("-", "+").replace("_", "/")
    variants = [
        ("padding stripped", token.rstrip("=")),
        ("surrounding newline", token + "\n"),
        ("embedded space", token[:10] + " " + token[10:]),
        ("extra padding", token + "=="),
    ]
    if std != token:
        variants.append(("standard alphabet", std))
    out = []
    for desc, t in variants:
        out.append({"desc": desc, "key": k, "token": t, "python_msg": python_decrypt(k, t, None, 0)})
    return out


def rotations():
    out = []
    for n in (0, 1, 16, 100):
        old, new = key(f"rot-old/{n}"), key(f"rot-new/{n}")
        msg = stream(f"rot/{n}", n)
        ts = 1_600_000_000 + n
        token = Fernet(old)._encrypt_from_parts(msg, ts, iv(f"rot-old/{n}")).decode()
        multi = MultiFernet([Fernet(new), Fernet(old)])
        rotated = multi.rotate(token)
        assert Fernet(new).extract_timestamp(rotated) == ts
        assert Fernet(new).decrypt(rotated) == msg
        out.append({"old_key": old, "new_key": new, "token": token, "msg": msg.hex(), "timestamp": ts})
    return out


def main():
    doc = {
        "source": "Python cryptography (cryptography.fernet), via tests/python/fernet_vectors.py; "
        "regenerate with `cargo xtask vectors`",
        "generate": generate(),
        "decrypt": decrypt_cases(),
        "strict": strictness_cases(),
        "rotate": rotations(),
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
