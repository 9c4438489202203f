"""Keyring maintenance with the SecretsConfig API alone: the kind of script
operators keep next to an application.

    python keyring_maintenance.py FILE generate VERSION
    python keyring_maintenance.py FILE rotate VERSION
    python keyring_maintenance.py FILE list
    python keyring_maintenance.py FILE activate VERSION

`generate` writes a new keyring file; `rotate` adds a version with a random
password and salt and makes it active; `list` prints the versions, the
active one starred; `activate` switches the active version. Every write goes
through `SecretsConfig.to_file`, which never loses a version the file holds.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from secrets_manager import SecretsConfig


def new_key() -> dict:
    return {"key": secrets.token_urlsafe(32), "salt": secrets.token_bytes(16)}


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("command", choices=["generate", "rotate", "list", "activate"])
    parser.add_argument("version", nargs="?")
    args = parser.parse_args(argv)
    if args.command != "list" and not args.version:
        parser.error(f"{args.command} needs a version")

    if args.command == "generate":
        SecretsConfig(keys={args.version: new_key()}, active_version=args.version).to_file(args.file)
    elif args.command == "rotate":
        config = SecretsConfig.from_file(args.file)
        if args.version.lower() in config.keys:
            print(f"error: version {args.version} exists already", file=sys.stderr)
            return 1
        config.keys[args.version] = new_key()
        config.active_version = args.version
        config.to_file(args.file)
    elif args.command == "activate":
        config = SecretsConfig.from_file(args.file)
        config.active_version = args.version
        config.to_file(args.file)
    else:
        config = SecretsConfig.from_file(args.file)
        for version in config.keys:
            print(("* " if version == config.active_version else "  ") + version)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
