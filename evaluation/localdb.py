"""One SQLite connection per thread on one file (autocommit, WAL): the endpoint cache and the
human-evaluation answers are written from several threads at once."""

from __future__ import annotations

import os
import sqlite3
import threading


class ThreadLocalDB:
    def __init__(self, path: str | os.PathLike):
        self.path, self.local = str(path), threading.local()

    def __call__(self) -> sqlite3.Connection:
        db = getattr(self.local, "db", None)
        if db is None:
            db = self.local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("pragma journal_mode=wal")
        return db
