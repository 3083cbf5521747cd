"""`python -m bot chat`: talk to the counselor through the local LINE emulator."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid

from . import messages as M
from .emulator.client import Emulator


def _show(msgs: list[dict], out) -> None:
    for m in msgs:
        text = m.get("text") or m.get("altText") or f"[{m.get('type')}]"
        print(f"bot: {text}", file=out, flush=True)


def wait_settled(emu: Emulator, user: str, seen: int, timeout: float = 300.0) -> list[dict]:
    """New messages once the bot owes this user nothing (no pending reply, empty outbox)."""
    store = emu.runtime.engine.store
    deadline = time.time() + timeout
    while time.time() < deadline:
        sess = store.open_session(user)
        pending_events = store.db["events"].count_where("status = 'pending' and user_id = ?", [user])
        pending_out = store.db["outbox"].count_where("status = 'pending' and user_id = ?", [user])
        got = emu.fake.delivered(user)
        if not pending_events and not pending_out and not (sess and sess["pending_reply"]) and len(got) > seen:
            time.sleep(0.2)
            return emu.fake.delivered(user)[seen:]
        time.sleep(0.1)
    return emu.fake.delivered(user)[seen:]


def run_chat(lines, consent: bool = True, out=sys.stdout, data=None, build_scorer: bool = True, **settings) -> int:
    """``data``: the KokoroChat folder the feedback scorer is built from on the first run (default
    $KOKOROCHAT_DIR or the known places); ``build_scorer=False`` never builds it."""
    db = settings.pop("db_path", None) or os.path.join(tempfile.mkdtemp(prefix="kokoro-chat-"), "bot.sqlite3")
    if build_scorer:
        from .config import Settings
        from .scorer_build import ensure_scorer

        config_file = settings.get("config_file")
        overrides = {k: v for k, v in settings.items() if k != "config_file"}
        ensure_scorer(Settings.load(config_file, environ=os.environ, **overrides).scorer, data=data)
    emu = Emulator(environ=os.environ, db_path=db, **settings)
    user = "U" + uuid.uuid4().hex
    seen = 0
    try:
        emu.follow(user)
        new = wait_settled(emu, user, seen)
        _show(new, out)
        seen += len(new)
        if consent:
            emu.postback(user, M.CONSENT)
            new = wait_settled(emu, user, seen)
            _show(new, out)
            seen += len(new)
        for line in lines:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            print(f"client: {line}", file=out, flush=True)
            emu.text(user, line)
            new = wait_settled(emu, user, seen)
            _show(new, out)
            seen += len(new)
            if line.strip() in M.END_WORDS:
                break
        store = emu.runtime.engine.store
        if store.open_session(user):
            print("client: 終了", file=out, flush=True)
            emu.text(user, "終了")
            _show(wait_settled(emu, user, seen), out)
        sessions = list(store.db["sessions"].rows_where("user_id = ?", [user]))
        ok = (
            bool(sessions)
            and all(s["status"] == "closed" for s in sessions)
            and all(store.turns(s["id"]) for s in sessions)
        )
        if emu.fake.errors:
            print(f"emulator: {len(emu.fake.errors)} request(s) broke the Messaging API spec", file=sys.stderr)
            ok = False
        print(f"session stored in {db}" if ok else "the session did not end and store cleanly", file=sys.stderr)
        return 0 if ok else 1
    finally:
        emu.close()


def interactive_lines():
    print("You are the client. Type messages; 「終了」 ends the session (Ctrl-D to quit).", file=sys.stderr)
    while True:
        try:
            yield input("> ")
        except EOFError:
            return
