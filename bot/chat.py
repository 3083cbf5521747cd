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


def run_chat(
    lines,
    consent: bool = True,
    out=sys.stdout,
    data=None,
    build_scorer: bool = True,
    wait_feedback: bool = False,
    **settings,
) -> int:
    """``data``: the KokoroChat folder the feedback scorer is built from on the first run (default
    $KOKOROCHAT_DIR or the known places), in the background: the chat never waits for it, except at
    the session's end with ``wait_feedback``; ``build_scorer=False`` never builds it."""
    from pathlib import Path

    from . import scorer_build

    db = settings.pop("db_path", None) or os.path.join(tempfile.mkdtemp(prefix="kokoro-chat-"), "bot.sqlite3")
    status, scorer = "off", None
    if build_scorer:
        from .config import Settings

        config_file = settings.get("config_file")
        overrides = {k: v for k, v in settings.items() if k != "config_file"}
        scorer = Settings.load(config_file, environ=os.environ, **overrides).scorer
        status = scorer_build.ensure_scorer(scorer, data=data)
    shown = [None]

    def show_build() -> None:  # one line when the build's stage changes, between turns
        if status == "building" and scorer_build.building(Path(scorer)):
            now = scorer_build.progress(Path(scorer)).split(",")[0]
            if now != shown[0]:
                shown[0] = now
                print(f"(feedback scorer, in the background: {now})", file=sys.stderr, flush=True)

    if status == "building" and "KOKORO_THREADS" not in os.environ and "n_threads" not in settings:
        # llama.cpp's threads wait for each other by spinning: beside a busy core (the build) a reply
        # took 61 s instead of 1 s on 2 cores. One core each while the build runs.
        settings["n_threads"] = max(1, (os.cpu_count() or 2) - 1)
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
            if M.control_word(line) == "end":
                wait_for_build(status, scorer, wait_feedback)
            show_build()
            print(f"client: {line}", file=out, flush=True)
            emu.text(user, line)
            new = wait_settled(emu, user, seen)
            _show(new, out)
            seen += len(new)
            if M.control_word(line) == "end":
                break
        store = emu.runtime.engine.store
        if store.open_session(user):
            wait_for_build(status, scorer, wait_feedback)
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


def wait_for_build(status: str, scorer: str | None, wait: bool) -> None:
    """Before the session ends: wait for a background build (``wait``), or say how to."""
    from pathlib import Path

    from . import scorer_build

    if status != "building" or not scorer_build.building(Path(scorer)):
        return
    if wait:
        print("waiting for the feedback scorer to finish (--wait-feedback) …", file=sys.stderr, flush=True)
        scorer_build.wait(Path(scorer))
    else:
        print(
            f"the feedback scorer is still building ({scorer_build.progress(Path(scorer))}): this session ends "
            "without its card; the build goes on, and `bot chat` gives cards once it is done "
            "(`--wait-feedback` waits for it at the session's end)",
            file=sys.stderr,
            flush=True,
        )


def interactive_lines():
    print("You are the client. Type messages; 「終了」 ends the session (Ctrl-D to quit).", file=sys.stderr)
    while True:
        try:
            yield input("> ")
        except EOFError:
            return
