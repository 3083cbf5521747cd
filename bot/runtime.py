"""Background work of one deployment: the event worker, the generation thread and the
APScheduler tick. Started once per deployment: a file lock beside the database keeps a second
gunicorn worker from starting them again (it only stores events; the lock holder processes them)."""
from __future__ import annotations

import fcntl
import logging
import threading

from . import messages as M
from .events import dispatch
from .sessions import Engine

log = logging.getLogger("kokoro.bot.runtime")


class Runtime:
    def __init__(self, engine: Engine, tick_s: float):
        self.engine, self.tick_s = engine, tick_s
        self.wake = threading.Event()
        self.threads: list[threading.Thread] = []
        self.scheduler = None
        self._lock_file = None

    def process_pending(self) -> int:
        n = 0
        for row in self.engine.store.pending_events():
            try:
                dispatch(self.engine, row["event"])
                self.engine.store.mark_event(row["id"], "done")
            except Exception as e:
                log.error("event %s failed: %s", row["type"], type(e).__name__)
                self.engine.store.mark_event(row["id"], "error")
                if row["type"] == "message" and row["source_type"] == "user" and row["user_id"]:
                    try:  # a reply every time, even when handling failed
                        self.engine.send(row["user_id"], M.fallback())
                    except Exception as e2:
                        log.error("fallback failed: %s", type(e2).__name__)
            n += 1
        return n

    def _worker(self):
        while not self.engine.stop.is_set():
            self.wake.wait(0.5)
            self.wake.clear()
            self.process_pending()

    def start(self, db_path: str) -> bool:
        """Start the threads and the scheduler unless another process already runs them."""
        self._lock_file = open(db_path + ".lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("another process runs the scheduler and workers for %s", db_path)
            return False
        from apscheduler.schedulers.background import BackgroundScheduler

        self.engine.store.release_stale_sends(0.0)  # this process is now the only sender

        for target in (self._worker, self.engine.run_generation):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self.threads.append(t)
        self.scheduler = BackgroundScheduler()
        self.scheduler.add_job(self.engine.tick, "interval", seconds=self.tick_s, max_instances=1, coalesce=True,
                               id="tick")
        self.scheduler.add_job(self.engine.purge, "interval", hours=1, max_instances=1, coalesce=True, id="retention")
        self.scheduler.start()
        self.engine.purge()
        self.wake.set()
        return True

    def shutdown(self):
        self.engine.stop.set()
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
        for t in self.threads:
            t.join(timeout=5)
        if self._lock_file:
            self._lock_file.close()
