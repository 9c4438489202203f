"""python-dotenv's reading of each file named on stdin (one path per line).

Writes a JSON list, one entry per file: {"values": [[name, value-or-null], ...]}
or {"invalid": true} when python-dotenv warns that it skipped a line.
"""

import json
import logging
import sys

from dotenv import dotenv_values


class Flag(logging.Handler):
    def __init__(self):
        super().__init__()
        self.hit = False

    def emit(self, record):
        self.hit = True


flag = Flag()
logging.getLogger("dotenv.main").addHandler(flag)
logging.getLogger("dotenv.main").setLevel(logging.WARNING)

results = []
for path in sys.stdin.read().splitlines():
    flag.hit = False
    values = dotenv_values(path)
    if flag.hit:
        results.append({"invalid": True})
    else:
        results.append({"values": [[k, v] for k, v in values.items()]})
json.dump(results, sys.stdout)
