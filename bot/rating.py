"""Client self-rating: after a session the client may rate it on the same 20 items (0–5, skip
allowed) and the three screening questions, as on the platform KokoroChat came from. Complete
ratings export as KokoroChat JSON, so logged sessions become new training data."""

from __future__ import annotations

import json
from pathlib import Path

from kokoro.dataset import load_dialogue
from kokoro.items import FLAG_CHECKED, FLAGS, ITEMS, total_score

from .messages import text
from .store import iso

RATE, NO_RATE, PREFIX = "action=rate", "action=norate", "rate="
FLAG_QUESTIONS = {
    "harmful_due_to_ignorance": "相談員の言葉で、無理解や軽率さから傷ついた発言はありましたか？",
    "other_potentially_unethical": (
        "診断のように聞こえる発言、薬についての助言、非科学的な話、性的な発言など、問題のある発言はありましたか？"
    ),
    "unwilling_to_continue": "この相談員とは、もう話したくないと感じましたか？",
}
STEPS = len(ITEMS) + len(FLAGS)


def invite() -> list[dict]:
    return [
        text(
            "よろしければ、今回の相談を20の項目（0〜5）で評価していただけますか？ 途中の項目はスキップもできます。",
            [("評価する", RATE), ("今回はしない", NO_RATE)],
        )
    ]


def question(sid: int, step: int) -> dict:
    if step < len(ITEMS):
        it = ITEMS[step]
        quick = [(str(v), f"{PREFIX}{sid}:{step}:{v}") for v in range(6)] + [("スキップ", f"{PREFIX}{sid}:{step}:skip")]
        return text(f"{step + 1}/{len(ITEMS)}　{it.label_ja}（0〜5）", quick)
    f = FLAGS[step - len(ITEMS)]
    return text(FLAG_QUESTIONS[f.key], [("はい", f"{PREFIX}{sid}:{step}:yes"), ("いいえ", f"{PREFIX}{sid}:{step}:no")])


def start(engine, user_id: str) -> None:
    sess = engine.store.last_closed_session(user_id)
    if not sess:
        engine.send(user_id, [text("評価できる相談が見つかりませんでした。")])
        return
    engine.store.save_rating(sess, step=0, items=[None] * len(ITEMS), flags={}, status="asking")
    engine.send(user_id, [question(sess["id"], 0)])


def answer(engine, user_id: str, data: str) -> None:
    try:
        sid_s, step_s, value = data[len(PREFIX) :].split(":")
        sid, step = int(sid_s), int(step_s)
    except ValueError:
        return
    r = engine.store.rating(sid)
    if not r or r["user_id"] != user_id or r["status"] != "asking" or r["step"] != step:
        return  # a stale or repeated tap
    items, flags = json.loads(r["items"]), json.loads(r["flags"])
    if step < len(ITEMS):
        items[step] = None if value == "skip" else max(0, min(5, int(value)))
    else:
        flags[FLAGS[step - len(ITEMS)].key] = value == "yes"
    done = step + 1 >= STEPS
    sess = engine.store.session(sid)
    engine.store.save_rating(sess, step=step + 1, items=items, flags=flags, status="done" if done else "asking")
    engine.send(
        user_id,
        [text("ご協力ありがとうございました。いただいた評価は今後の改善に使わせていただきます。")]
        if done
        else [question(sid, step + 1)],
    )


def to_kokorochat(session: dict, turns: list[dict], rating: dict) -> dict:
    """One session in KokoroChat's JSON format (both review blocks, the data's key spelling)."""
    items, flags = json.loads(rating["items"]), json.loads(rating["flags"])
    score = total_score(items, flags)
    created = iso(rating["updated_at"])
    en = {
        "evaluation_id": session["id"],
        "evaluation_created_at": created,
        "client_id": None,
        "counselor_id": None,
        "score": score,
    }
    jp = {
        "評価ID": session["id"],
        "評価作成日時": created,
        "クライアント役ID": None,
        "カウンセラー役ID": None,
        "点数": score,
    }
    for it, v in zip(ITEMS, items):
        en[it.key], jp[it.label_ja] = v, v
    for f in FLAGS:
        en[f.key] = jp[f.label_ja] = FLAG_CHECKED if flags.get(f.key) else None
    return {
        "dialogue": [_utterance(t) for t in turns],
        "topic": None,
        "review_by_client_jp": jp,
        "review_by_client_en": en,
    }


def _utterance(t: dict) -> dict:
    """A turn as KokoroChat writes it; a counselor turn also says who wrote it (``written_by``:
    model, or human for a console counselor's words), so research can tell the two apart."""
    u = {"role": t["role"], "time": t["time"], "utterance": t["text"]}
    if t["role"] == "counselor":
        u["written_by"] = "human" if (t.get("author") or "").startswith("counselor:") else "model"
    return u


def export(store, out: Path) -> tuple[int, int]:
    """Write every completely rated session; returns (written, skipped as incomplete)."""
    out.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for r in store.db["ratings"].rows_where("status = 'done'", order_by="session_id"):
        if None in json.loads(r["items"]):
            skipped += 1
            continue
        sess = store.session(r["session_id"])
        path = out / f"{sess['id']}.json"
        path.write_text(
            json.dumps(to_kokorochat(sess, store.turns(sess["id"]), r), ensure_ascii=False, indent=1), encoding="utf-8"
        )
        load_dialogue(path)  # what we write must pass kokoro's own validation
        written += 1
    return written, skipped
