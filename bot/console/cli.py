"""python -m bot counselor add|disable|enable|list — console accounts in the bot's database."""

from __future__ import annotations

import getpass
import sys
from datetime import datetime

from ..store import Store
from .store import ConsoleError, ConsoleStore


def main(args) -> int:
    accounts = ConsoleStore(Store(args.db))
    try:
        if args.action == "list":
            for c in accounts.list():
                state = "disabled" if c["disabled"] else "active"
                seen = datetime.fromtimestamp(c["last_seen"]).isoformat(timespec="minutes") if c["last_seen"] else "-"
                print(f"{c['name']}\t{c['role']}\t{state}\tlast seen {seen}")
            return 0
        if not args.name:
            raise ConsoleError(f"`counselor {args.action}` needs a NAME")
        if args.action == "add":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"password for {args.name}: ")
                if getpass.getpass("again: ") != password:
                    raise ConsoleError("the two passwords differ; nothing was added")
            accounts.add(args.name, password, args.role)
            print(f"added {args.role} {args.name} to {args.db}")
        else:
            accounts.set_disabled(args.name, args.action == "disable")
            print(f"{args.name} {args.action}d")
        return 0
    except ConsoleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
