"""Post-session feedback: the configured scorer predicts the 20 client-feedback items; the total
follows the paper's rule; the client gets a Flex card grouped as the paper's Table 2 (bars, total
/100) and a short text summary; the prediction is stored with the scorer's identity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from kokoro.dataset import Turn
from kokoro.flags import predicted_total
from kokoro.interval import interval
from kokoro.items import ITEMS, table2_groups

from .messages import text

log = logging.getLogger("kokoro.bot.feedback")
FEEDBACK_OFF = (
    "今回の相談のふりかえり（AIが20項目で推定するフィードバック）は、この環境ではまだ準備されていないため、"
    "お送りできません。"
)
FEEDBACK_PENDING = (
    "今回の相談のふりかえり（AIが20項目で推定するフィードバック）は、まだ準備中のため、今回はお送りできません。"
    "準備はあと{minutes}分ほどで終わる見込みで、その後の相談からはお送りできます。"
)
ASPECT_JA = {
    "Sense of Validation": "受け止められた感覚",
    "Awareness and Hope": "気づきと希望",
    "Engagement": "取り組み",
    "Flow and Comfort": "リズムと居心地",
    "Overall Evaluation": "全体の評価",
    "Flow of Conversation": "始まりと終わり",
    "Counseling Skills": "カウンセリングの技法",
}


def pending_or_off(path: str | None) -> str:
    from .scorer_build import building, minutes_left

    if path and building(Path(path)):
        return FEEDBACK_PENDING.format(minutes=minutes_left(Path(path)))
    return FEEDBACK_OFF


def load_scorer(path: str | None, n_gpu_layers: int = 0, flash_attn: str = "auto"):
    """The CPU scorer folder or a scorer GGUF; None when not configured or missing."""
    if not path or not Path(path).exists():
        return None
    if Path(path).is_dir():
        from kokoro.cpu_scorer import CpuScorer

        scorer = CpuScorer.load(path)
        if not scorer.coherence:
            log.warning(
                "the CPU scorer at %s has no coherence model, so it cannot tell a counselor who listens from one "
                "who answers at random; rebuild it with `python -m training scorer --preset cpu --out %s`",
                path,
                path,
            )
        return scorer
    from kokoro.gguf_scorer import GgufScorer

    return GgufScorer(path, n_gpu_layers=n_gpu_layers, flash_attn=flash_attn)


def _bar(value: int) -> dict:
    pct = f"{max(2, value * 20)}%"
    return {
        "type": "box",
        "layout": "horizontal",
        "height": "8px",
        "backgroundColor": "#EEEEEE",
        "cornerRadius": "4px",
        "contents": [
            {
                "type": "box",
                "layout": "vertical",
                "width": pct,
                "backgroundColor": "#4F9D69",
                "cornerRadius": "4px",
                "contents": [{"type": "filler"}],
            }
        ],
    }


def spread(span: tuple[int, int] | None) -> str:
    """How sure the total is, in words a client reads (empty when the scorer has no interval)."""
    if span is None:
        return ""
    lo, hi = span
    return f"推定には幅があり、実際の評価はおよそ {lo}〜{hi} の範囲です（似た相談の10回に8回はこの範囲に入ります）。"


def card(items: tuple[int, ...], total: int, span: tuple[int, int] | None = None) -> dict:
    body: list[dict] = [
        {"type": "text", "text": f"合計 {total} / 100", "weight": "bold", "size": "xl"},
        {"type": "text", "text": "AIによる推定です（相談者の評価20項目・0〜5）", "size": "xs", "color": "#888888"},
    ]
    if span is not None:
        body.append({"type": "text", "text": spread(span), "size": "xs", "color": "#888888", "wrap": True})
    for _, aspect, its in table2_groups():
        body += [
            {"type": "separator", "margin": "md"},
            {"type": "text", "text": ASPECT_JA.get(aspect, aspect), "weight": "bold", "size": "sm", "margin": "md"},
        ]
        for it in its:
            v = items[it.number - 1]
            body.append(
                {
                    "type": "box",
                    "layout": "vertical",
                    "margin": "sm",
                    "spacing": "xs",
                    "contents": [{"type": "text", "text": f"{it.label_ja}　{v}", "size": "xxs", "wrap": True}, _bar(v)],
                }
            )
    bubble = {
        "type": "bubble",
        "size": "mega",
        "header": {
            "type": "box",
            "layout": "vertical",
            "contents": [{"type": "text", "text": "今回の相談のふりかえり", "weight": "bold", "size": "md"}],
        },
        "body": {"type": "box", "layout": "vertical", "contents": body},
    }
    return {"type": "flex", "altText": f"今回の相談のふりかえり（合計 {total} / 100）", "contents": bubble}


def summary(items: tuple[int, ...], total: int, span: tuple[int, int] | None = None) -> str:
    """Two strengths and up to two things to improve, never the same item in both: an item counts as
    a thing to improve only when it scored below both strengths."""
    v = lambda it: items[it.number - 1]
    high = sorted(ITEMS, key=lambda it: (-v(it), it.number))[:2]
    low = [it for it in sorted(ITEMS, key=lambda it: (v(it), it.number)) if v(it) < v(high[-1])][:2]
    lead = f"今回の相談のふりかえり（AIの推定）：合計 {total} / 100。" + spread(span)
    good = "、".join(it.label_ja for it in high)
    if not low:
        return lead + f"よかったと推定される点は「{good}」です。項目による大きな差はありませんでした。"
    weak = "、".join(it.label_ja for it in low)
    return lead + f"よかったと推定される点は「{good}」、これから伸ばせそうな点は「{weak}」です。"


def total_interval(scorer, total: int) -> tuple[int, int] | None:
    """The scorer's calibrated interval around ``total`` (kokoro.interval), or None when the scorer
    carries no calibration (a scorer GGUF, a CPU scorer built before the interval existed)."""
    table = scorer.identity.get("interval")
    return interval(table, total) if table else None


def give_feedback(engine, session: dict, deliver: bool = True) -> bool:
    """Score a finished session, store the score and (``deliver``) send the card; False when there
    is nothing to score. A session flagged for crisis is scored for research but not delivered."""
    scorer = engine.scorer
    rows = engine.store.turns(session["id"])
    if not any(r["role"] == "client" for r in rows):
        return False
    if scorer is None:  # built since the bot started (bot chat builds it in the background)?
        scorer = engine.scorer = load_scorer(engine.s.scorer, engine.s.n_gpu_layers, engine.s.flash_attn)
    if scorer is None:  # say so in plain words rather than leave the client waiting for a card
        if deliver:
            engine.send(session["user_id"], [text(pending_or_off(engine.s.scorer))])
        return False
    turns = [Turn(r["role"], r["time"], r["text"]) for r in rows]
    items = tuple(scorer.predict(turns))
    total, flags = predicted_total(items, turns)  # flags stored for research; see kokoro.flags.ZERO_RULE
    engine.store.add_scores(session, "predicted", scorer.identity, items, total, flags)
    if not deliver:
        log.info("session %s scored (not sent: crisis)", session["id"])
        return True
    span = total_interval(scorer, total)
    c = card(items, total, span)
    if len(json.dumps(c, ensure_ascii=False).encode()) > 30_000:
        raise ValueError("feedback card is over LINE's 30 KB Flex limit")
    engine.send(session["user_id"], [c, text(summary(items, total, span))])
    log.info("session %s scored", session["id"])
    return True
