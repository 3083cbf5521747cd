"""Background work of one deployment: the event worker, the generation thread and the
APScheduler tick. Started once per deployment: a file lock beside the database keeps a second
gunicorn worker from starting them again (it only stores events; the lock holder processes them),
and a process without the lock stands by and takes over when the holder exits or dies.

Every loop is supervised: an exception is logged by type, counted, and the loop goes on; each loop
beats a heartbeat, and /healthz answers 503 when a loop died or has not come round for
``stuck_s`` (a platform then restarts the process). SIGTERM (gunicorn's worker_exit hook, see
bot/gunicorn_conf.py) drains: the loops finish what they hold, the outbox is flushed, the lock
is released for the next process."""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import Counter

from . import messages as M
from .events import client_text_of, dispatch, message_id_of
from .sessions import Engine

log = logging.getLogger("kokoro.bot.runtime")


class Runtime:
    def __init__(self, engine: Engine, tick_s: float):
        self.engine, self.tick_s = engine, tick_s
        self.wake = threading.Event()
        self.threads: list[threading.Thread] = []
        self.scheduler = None
        self._lock_file = None
        self.role = "not started"  # active | standby | stopped
        self.failures: Counter = Counter()  # loop → exceptions caught (by type in the log)

    # ------------------------------------------------------------ health
    def health(self) -> tuple[dict, int]:
        """(report, HTTP status) for /healthz: 503 when a loop of the active process died or is stuck."""
        beats = dict(self.engine.beats)
        out = {"role": self.role, "failures": dict(self.failures)}
        if self.role != "active":  # standing by (or not started here) is healthy; stopped is not
            ok = self.role != "stopped"
            return dict(out, ok=ok), 200 if ok else 503
        t = time.monotonic()
        stuck_s = self.engine.s.stuck_s
        dead = [th.name for th in self.threads if not th.is_alive()]
        late = [k for k, v in beats.items() if t - v > stuck_s]
        busy = self.engine.busy_since
        if busy and t - busy > stuck_s:
            late.append("generation")
        out.update(dead=dead, stuck=late, ok=not dead and not late)
        return out, 200 if out["ok"] else 503

    def _beat(self, name: str) -> None:
        self.engine.beats[name] = time.monotonic()

    def process_pending(self) -> int:
        n = 0
        for row in self.engine.store.pending_events():
            ev = row["event"]
            try:
                with self.engine.effects_of(row["id"]):  # a replay after a crash finds its sends made
                    dispatch(self.engine, ev)
                self.engine.store.mark_event(row["id"], "done")
            except Exception as e:
                log.error("event %s failed: %s", row["type"], type(e).__name__)
                try:
                    self.engine.store.mark_event(row["id"], "error")
                except Exception as e2:  # e.g. the row went with a deletion: keep the worker alive
                    log.error("marking event failed: %s", type(e2).__name__)
                if row["type"] == "message" and row["source_type"] == "user" and row["user_id"]:
                    try:  # a reply every time, even when handling failed — and the crisis check first
                        text = client_text_of(ev)
                        answered = (
                            ev["_answered"]
                            if "_answered" in ev
                            else (self.engine.crisis_first(row["user_id"], text, message_id_of(ev)) if text else None)
                        )
                        if not answered:  # the protocol (or its follow-up) was sent: that is the reply
                            self.engine.send(row["user_id"], M.fallback(), key=f"fallback:{row['id']}")
                    except Exception as e2:
                        log.error("fallback failed: %s", type(e2).__name__)
            n += 1
        return n

    def _worker(self):
        while not self.engine.stop.is_set():
            self._beat("events")
            self.wake.wait(0.5)
            self.wake.clear()
            try:
                self.process_pending()
            except Exception as e:  # a supervised loop: one bad pass must not end the worker
                self.failures["events"] += 1
                log.error("event worker pass failed: %s", type(e).__name__)

    def _tick(self):
        self._beat("timer")
        try:
            self.engine.tick()
        except Exception as e:
            self.failures["timer"] += 1
            log.error("timer tick failed: %s", type(e).__name__)

    def _try_lock(self, db_path: str) -> bool:
        f = open(db_path + ".lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._lock_file = f
        return True

    def start(self, db_path: str, standby: bool = True) -> bool:
        """Start the loops unless another process runs them; then (``standby``) wait for its lock and
        take over when that process exits or is killed (the kernel drops a dead holder's lock)."""
        if self._try_lock(db_path):
            self._start_work()
            return True
        log.info("another process runs the scheduler and workers for %s; standing by", db_path)
        self.role = "standby"
        if standby:
            t = threading.Thread(target=self._standby, args=(db_path,), name="standby", daemon=True)
            t.start()
        return False

    def _standby(self, db_path: str) -> None:
        while not self.engine.stop.wait(1.0):
            if self._try_lock(db_path):
                log.info("the lock holder is gone: this process takes over")
                self._start_work()
                return

    def _start_work(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.engine.store.release_stale_sends(0.0)  # this process is now the only sender
        for name, target in (("events", self._worker), ("generation", self.engine.run_generation)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self.threads.append(t)
        self.scheduler = BackgroundScheduler()
        self.scheduler.add_job(self._tick, "interval", seconds=self.tick_s, max_instances=1, coalesce=True, id="tick")
        self.scheduler.add_job(self.engine.purge, "interval", hours=1, max_instances=1, coalesce=True, id="retention")
        self.scheduler.start()
        self.role = "active"
        self.engine.purge()
        self.wake.set()

    def shutdown(self, drain_s: float = 20.0):
        """Stop the loops (each finishes what it holds), flush the outbox once, release the lock."""
        self.engine.stop.set()
        self.wake.set()
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + drain_s
        for t in self.threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        if self.role == "active":
            try:
                self.engine.outbox.flush()
            except Exception as e:
                log.error("final outbox flush failed: %s", type(e).__name__)
        if self._lock_file:
            self._lock_file.close()
            self._lock_file = None
        if self.role == "active":
            log.info("runtime stopped: loops drained, lock released")
        self.role = "stopped"
