"""KokoroChat records: loading, validation and the utterance-merge rule.

A KokoroChat file is one JSON object with ``dialogue`` (role/time/utterance), ``topic`` and
``review_by_client_en`` / ``review_by_client_jp``. Errors name the file and the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from .items import FLAG_CHECKED, FLAGS, ITEMS, check_item_value, total_score

ROLES = ("counselor", "client")
DATA_ENV = "KOKOROCHAT_DIR"
DIALOGUES_SUBDIR = "kokorochat_dialogues"
MERGE_SEP = "\n"


class DataError(ValueError):
    """A KokoroChat file or folder that cannot be used. ``path`` and ``field`` say where."""

    def __init__(self, path: os.PathLike | str, field: str | None, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Turn:
    role: str  # "counselor" or "client"
    time: str  # ISO 8601 as in the data; for a merged turn, the time of its first utterance
    text: str


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[Turn, ...]
    items: tuple[int, ...]  # the 20 item scores in ITEMS order
    score: int
    flags: dict[str, bool]
    topic: dict | None = None
    evaluation_id: int | None = None
    created_at: str | None = None
    client_id: int | None = None
    counselor_id: int | None = None
    path: str | None = field(default=None, compare=False)

    def merged(self) -> tuple[Turn, ...]:
        return merge_turns(self.turns)


def merge_turns(turns: Iterable[Turn], sep: str = MERGE_SEP) -> tuple[Turn, ...]:
    """Merge consecutive utterances of the same speaker into one turn (paper §5.1).
    The merged turn keeps the first utterance's time; texts are joined with ``sep``."""
    out: list[Turn] = []
    for t in turns:
        if out and out[-1].role == t.role:
            out[-1] = Turn(t.role, out[-1].time, out[-1].text + sep + t.text)
        else:
            out.append(t)
    return tuple(out)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _require(obj: dict, key: str, path: Path, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(path, f"{where}{key}", "missing; every KokoroChat file has it")
    return obj[key]


def _flag(value: object, path: Path, fld: str) -> bool:
    if value is None or value is False:
        return False
    if value == FLAG_CHECKED or value is True:
        return True
    raise DataError(path, fld, f"must be null or {FLAG_CHECKED!r}, got {value!r}")


def _turns(raw: object, path: Path) -> tuple[Turn, ...]:
    if not isinstance(raw, list) or not raw:
        raise DataError(path, "dialogue", "must be a non-empty list of utterances")
    out = []
    for i, u in enumerate(raw):
        where = f"dialogue[{i}]."
        role = _require(u, "role", path, where)
        if role not in ROLES:
            raise DataError(path, f"{where}role", f"unknown role {role!r}; expected one of {list(ROLES)}")
        time = _require(u, "time", path, where)
        try:
            parse_time(time)
        except (TypeError, ValueError):
            raise DataError(path, f"{where}time", f"not an ISO 8601 time: {time!r}") from None
        text = _require(u, "utterance", path, where)
        if not isinstance(text, str):
            raise DataError(path, f"{where}utterance", f"must be a string, got {type(text).__name__}")
        out.append(Turn(role, time, text))
    return tuple(out)


def parse_dialogue(obj: object, path: os.PathLike | str, check_score: bool = True) -> Dialogue:
    """Validate one decoded KokoroChat object and return its record."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise DataError(path, None, f"must hold a JSON object, not {type(obj).__name__}")
    turns = _turns(_require(obj, "dialogue", path, ""), path)
    review = _require(obj, "review_by_client_en", path, "")
    where = "review_by_client_en."
    items = []
    for it in ITEMS:
        value = _require(review, it.key, path, where)
        try:
            items.append(check_item_value(value))
        except ValueError as e:
            raise DataError(path, where + it.key, str(e)) from None
    flags = {f.key: _flag(_require(review, f.key, path, where), path, where + f.key) for f in FLAGS}
    score = _require(review, "score", path, where)
    if isinstance(score, bool) or not isinstance(score, int):
        raise DataError(path, where + "score", f"must be an integer, got {score!r}")
    expected = total_score(items, flags)
    if check_score and score != expected:
        raise DataError(path, where + "score", f"is {score} but the 20 items and the screening flags give {expected}")
    topic = obj.get("topic")
    if topic is not None and not isinstance(topic, dict):
        raise DataError(path, "topic", "must be an object or null")
    return Dialogue(
        id=path.stem,
        turns=turns,
        items=tuple(items),
        score=score,
        flags=flags,
        topic=topic,
        evaluation_id=review.get("evaluation_id"),
        created_at=review.get("evaluation_created_at"),
        client_id=review.get("client_id"),
        counselor_id=review.get("counselor_id"),
        path=str(path),
    )


def load_dialogue(path: os.PathLike | str, check_score: bool = True) -> Dialogue:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, None, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise DataError(path, None, "not UTF-8 text") from None
    return parse_dialogue(obj, path, check_score)


def resolve_data_dir(data: os.PathLike | str | None = None) -> Path:
    """The folder of KokoroChat JSON files: ``data`` or $KOKOROCHAT_DIR; a clone's root
    (holding ``kokorochat_dialogues/``) is accepted too."""
    value = data if data not in (None, "") else os.environ.get(DATA_ENV)
    if not value:
        raise DataError(
            "<data>",
            None,
            f"no KokoroChat folder given: pass --data DIR or set {DATA_ENV} "
            "to your clone of https://github.com/UEC-InabaLab/KokoroChat",
        )
    p = Path(value).expanduser()
    if not p.is_dir():
        raise DataError(p, None, f"folder not found; pass --data DIR or set {DATA_ENV} to a KokoroChat clone")
    if (p / DIALOGUES_SUBDIR).is_dir():
        p = p / DIALOGUES_SUBDIR
    return p


REPO_ROOT = Path(__file__).resolve().parents[1]
# where a KokoroChat clone is looked for when none is given (docs/data.md): $KOKOROCHAT_DIR, then
# data/KokoroChat in this repository, a KokoroChat clone beside it, the shared data folder beside it
KNOWN_PLACES = (
    REPO_ROOT / "data" / "KokoroChat",
    REPO_ROOT.parent / "KokoroChat",
    REPO_ROOT.parent / "shared" / "data" / "kokorochat",
)


def find_data_dir(data: os.PathLike | str | None = None) -> Path | None:
    """The KokoroChat folder from ``data``, $KOKOROCHAT_DIR or the known places; None if none holds
    dialogue files (never raises: for commands that can run without the data)."""
    given = data or os.environ.get(DATA_ENV)
    for place in [given] if given else KNOWN_PLACES:
        try:
            p = resolve_data_dir(place)
        except DataError:
            continue
        if any(p.glob("*.json")):
            return p
    return None


def _sort_key(p: Path):
    return (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)


@dataclass
class LoadResult:
    dialogues: list[Dialogue]
    errors: list[DataError]

    @property
    def skipped(self) -> int:
        return len(self.errors)


def load_dir(data: os.PathLike | str | None = None, lenient: bool = False, check_score: bool = True) -> LoadResult:
    """Load every ``*.json`` in the folder, ordered by numeric id. Strict mode raises the first
    DataError; lenient mode skips bad files and returns their errors."""
    folder = resolve_data_dir(data)
    files = sorted(folder.glob("*.json"), key=_sort_key)
    if not files:
        raise DataError(folder, None, "holds no *.json files; is this a KokoroChat folder?")
    dialogues, errors = [], []
    for f in files:
        try:
            dialogues.append(load_dialogue(f, check_score))
        except DataError as e:
            if not lenient:
                raise
            errors.append(e)
    return LoadResult(dialogues, errors)


def load(data: os.PathLike | str | None = None, lenient: bool = False) -> list[Dialogue]:
    return load_dir(data, lenient).dialogues


def by_id(dialogues: Sequence[Dialogue]) -> dict[str, Dialogue]:
    return {d.id: d for d in dialogues}
