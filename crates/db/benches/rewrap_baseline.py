"""The baseline for `cargo xtask bench`'s db benchmark: a rewrap written the
way an application author would write it in Python, with the
`cryptography` package and the standard `sqlite3` module: read every row,
`MultiFernet.rotate` each token (which keeps its timestamp), one UPDATE per
row, a commit every 1000 rows (the same batch as `db rewrap`'s default).

usage: rewrap_baseline.py DB_PATH NEW_KEY OLD_KEY
prints: seconds rows
"""

import sqlite3
import sys
import time

from cryptography.fernet import Fernet, MultiFernet


def main() -> None:
    path, new_key, old_key = sys.argv[1:4]
    rotator = MultiFernet([Fernet(new_key), Fernet(old_key)])
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    rows = conn.execute("SELECT id, secret FROM t ORDER BY id").fetchall()
    for done, (row_id, token) in enumerate(rows, start=1):
        fresh = rotator.rotate(token.encode()).decode()
        conn.execute("UPDATE t SET secret = ? WHERE id = ?", (fresh, row_id))
        if done % 1000 == 0:
            conn.commit()
    conn.commit()
    print(time.perf_counter() - started, len(rows))


if __name__ == "__main__":
    main()
