"""Python side of the key-derivation interop tests.

Reads {"cases": [{"password", "salt" (hex), "iterations", "token", "msg" (hex)}]}
on stdin. For each case it derives the key with PBKDF2HMAC(SHA256) exactly as
the Python SecretsManager does, decrypts `token` (made by the Rust side) and
makes a token of its own for `msg`. Writes
{"results": [{"key", "decrypted" (hex), "token"}]}.
"""

import base64
import json
import sys

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

results = []
for case in json.load(sys.stdin)["cases"]:
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=32,
        salt=bytes.fromhex(case["salt"]),
        iterations=case["iterations"],
    )
    key = base64.urlsafe_b64encode(kdf.derive(case["password"].encode("utf-8")))
    f = Fernet(key)
    results.append(
        {
            "key": key.decode(),
            "decrypted": f.decrypt(case["token"]).hex(),
            "token": f.encrypt(bytes.fromhex(case["msg"])).decode(),
        }
    )
json.dump({"results": results}, sys.stdout)
