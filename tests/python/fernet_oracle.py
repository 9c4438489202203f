"""Live interop oracle: reads a JSON request on stdin, answers on stdout.

{"decrypt": [{"key", "token"}...], "encrypt": [{"key", "msg" (hex), "timestamp"}...]}
-> {"decrypted": [{"msg" (hex), "timestamp"}...], "encrypted": [token...]}
"""

import json
import sys

from cryptography.fernet import Fernet

req = json.load(sys.stdin)
decrypted = []
for item in req["decrypt"]:
    f = Fernet(item["key"])
    decrypted.append({"msg": f.decrypt(item["token"]).hex(), "timestamp": f.extract_timestamp(item["token"])})
encrypted = [
    Fernet(item["key"]).encrypt_at_time(bytes.fromhex(item["msg"]), item["timestamp"]).decode()
    for item in req["encrypt"]
]
json.dump({"decrypted": decrypted, "encrypted": encrypted}, sys.stdout)
