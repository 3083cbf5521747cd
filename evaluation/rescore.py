"""`python -m evaluation rescore`: batch re-scoring of the bot's logged sessions with a scorer,
resumable (sessions this scorer already scored are skipped), written back with its identity."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime

from kokoro.dataset import Turn


def scorer_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rescore(db_path: str, scorer, since: str | None = None, limit: int = 0, progress: bool = True) -> dict:
    from tqdm import tqdm

    from bot.store import Store
    from kokoro.flags import predicted_total

    store = Store(db_path)
    ident = dict(scorer.identity, key=scorer_key(scorer.identity))
    done = {
        r["session_id"]
        for r in store.db.query("select session_id, scorer from scores where source = 'rescore'")
        if json.loads(r["scorer"]).get("key") == ident["key"]
    }
    where, params = "status = 'closed'", []
    if since:
        where += " and ended_at >= ?"
        params.append(datetime.fromisoformat(since).timestamp())
    todo = [s for s in store.db["sessions"].rows_where(where, params, order_by="id") if s["id"] not in done]
    todo = todo[: limit or None]
    t0, n, empty = time.time(), 0, 0
    for sess in tqdm(todo, desc="rescoring", disable=not progress):
        rows = store.turns(sess["id"])
        if not any(r["role"] == "client" for r in rows):
            empty += 1
            continue
        turns = [Turn(r["role"], r["time"], r["text"]) for r in rows]
        items = tuple(scorer.predict(turns))
        total, flags = predicted_total(items, turns)
        store.add_scores(sess, "rescore", ident, items, total, flags)
        n += 1
    secs = time.time() - t0
    return {
        "scored": n,
        "skipped_already_scored": len(done),
        "skipped_empty": empty,
        "seconds": round(secs, 2),
        "sessions_per_second": round(n / secs, 2) if secs > 0 else None,
        "scorer_key": ident["key"],
    }


def nightly(at: str, job) -> "object":
    """A BlockingScheduler that runs ``job`` every day at HH:MM (start it with .start())."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    hour, minute = (int(x) for x in at.split(":"))
    sched = BlockingScheduler()
    sched.add_job(job, "cron", hour=hour, minute=minute, id="nightly-rescore", max_instances=1, coalesce=True)
    return sched
