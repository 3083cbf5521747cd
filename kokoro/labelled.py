"""Labelled sets written for this repository (bot/safety_sets/, kokoro/rule_sets/): tab-separated
rows, ``#`` comment lines and blank lines skipped, every row checked for its column count."""

from __future__ import annotations

from pathlib import Path


class LabelledSetError(ValueError):
    """A labelled set that cannot be read as its columns (names the file and the line)."""


def read_tsv(path: Path, columns: int) -> list[list[str]]:
    return [parts for _, parts in numbered_rows(path, columns)]


def numbered_rows(path: Path, columns: int) -> list[tuple[int, list[str]]]:
    """(line number, columns) of every row: for a reader that names a row's line in its own checks.
    A file that cannot be read as UTF-8 text raises LabelledSetError too, naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelledSetError(f"{path}: cannot read it as UTF-8 text ({e})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != columns:
            raise LabelledSetError(f"{path}:{n}: expected {columns} tab-separated columns, got {len(parts)}")
        rows.append((n, parts))
    return rows
