"""The comparison folder: the comparison set, the raters' codes and their answers (SQLite, one row
per rater and item, written as each answer is given)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from evaluation.localdb import ThreadLocalDB

CHOICES = ("A", "B", "tie")


class FolderError(ValueError):
    """Not a comparison folder made by `humaneval prepare`; the message says what to run."""


class Folder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.comparison = json.loads((self.path / "comparison.json").read_text(encoding="utf-8"))
            self.raters = [c for c in (self.path / "raters.txt").read_text(encoding="utf-8").split() if c]
        except (OSError, ValueError) as e:
            raise FolderError(f"{self.path}: no comparison set ({e}); run `python -m evaluation humaneval prepare`")
        self.items = {x["id"]: x for x in self.comparison["items"]}
        self.db = ThreadLocalDB(self.path / "answers.sqlite3")
        self.db().execute(
            "create table if not exists answers (rater text, item text, shown text, winner text, at real, "
            "primary key (rater, item))"
        )

    def order(self, rater: str) -> list[str]:
        """The rater's own item order (seeded by the code), so no two raters tire on the same items."""
        ids = list(self.items)
        random.Random(f"{self.comparison['settings']['seed']}:{rater}").shuffle(ids)
        return ids

    def answered(self, rater: str) -> dict[str, str]:
        rows = self.db().execute("select item, shown from answers where rater = ?", [rater]).fetchall()
        return dict(rows)

    def save(self, rater: str, item_id: str, choice: str) -> None:
        """``choice`` as shown (A = the left / upper response); stored with the source it names."""
        if rater not in self.raters:
            raise FolderError(f"unknown rater code {rater!r}")
        item = self.items.get(item_id)
        if item is None or choice not in CHOICES:
            raise FolderError(f"no item {item_id!r} or choice {choice!r} (one of {CHOICES})")
        winner = "tie" if choice == "tie" else item["shown"][CHOICES.index(choice)]
        self.db().execute(
            "insert or replace into answers values (?, ?, ?, ?, ?)", [rater, item_id, choice, winner, time.time()]
        )

    def votes(self) -> dict[str, dict[str, str]]:
        """{item: {rater: winner source or 'tie'}} for the raters of raters.txt."""
        out: dict[str, dict[str, str]] = {}
        for rater, item, winner in self.db().execute("select rater, item, winner from answers"):
            if rater in self.raters and item in self.items:
                out.setdefault(item, {})[rater] = winner
        return out
