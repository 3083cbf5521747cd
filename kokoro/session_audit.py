"""What a client would notice in a session, counted the same way for any counselor — the bot, a
model under evaluation, or the human counselors of KokoroChat on the same client turns (their
human anchor). Per session, over the counselor's replies:

- ``facts_reasked``: replies asking for a fact the client already gave (age, gender, the topic;
  kokoro.memory's rules, with the facts known *at that reply*);
- ``invented``: people named that the client never mentioned (「お父様」 in a story about a mother);
- ``announces_end``: replies declaring the session over (only the client, the time limit or the
  idle timer may end it; human counselors do close at the time limit, so theirs is not zero);
- ``circling``: replies re-asking an earlier question of the session in new words
  (kokoro.conversation.re_asks);
- ``near_duplicates``: replies near-duplicating an earlier counselor turn;
- ``top_opener_share``: the share of replies that open with the session's most common opener
  (``opener``: the first clause, 「そうなんですね」);
- ``feedback`` / ``feedback_ignored``: client turns about the conversation itself (too many
  questions, wanting empathy, misunderstood, wanting to stop; kokoro.memory) and the replies to
  them that do not answer it (still asking; no apology; no word of ending).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Collection, Sequence

from .conversation import near_duplicate, questions, re_asks
from .memory import client_feedback, facts, problems

_CLAUSE = re.compile(r"[。、，,！？!?\n…」』）)]|\s")
OPENER_CHARS = 12  # a first clause longer than this is a sentence, not a formula: cut to compare
_KANA = re.compile(r"[ぁ-んー]+")
_LONG = re.compile(r"[ぁぃぅぇぉー～〜]")
_REPEAT = re.compile(r"(.)\1+")
_APOLOGY = re.compile(r"ごめん|すみません|申し訳|失礼")
_ENDING = re.compile(r"終|おしまい|やめ|止め")


def opener(text: str) -> str:
    """The reply's first clause (up to 、。！？, a closing bracket, a line break or a space), at most
    OPENER_CHARS, with elongations folded (ええ, えぇ and え are one opener)."""
    t = text.strip().lstrip("（(「『")
    first = _CLAUSE.split(t, maxsplit=1)[0][:OPENER_CHARS]
    return _REPEAT.sub(r"\1", _LONG.sub("", first)) or first


def backchannel(o: str) -> bool:
    """An opener that only acknowledges (「ええ」「そうなんですね」「なるほど」), not the start of content."""
    return bool(_KANA.fullmatch(o)) and len(o) <= 10  # 「ありがとうございます」


def after_opener(text: str) -> str:
    """The reply without its first clause and the marks after it ('' when nothing follows)."""
    t = text.strip().lstrip("（(「『")
    parts = _CLAUSE.split(t, maxsplit=1)
    return parts[1].lstrip("。、，,！？!?\n…」』）) 　") if len(parts) > 1 else ""


def ignores(reply: str, feedback: set[str]) -> bool:
    """Whether a reply to a client's words about the conversation leaves them unanswered."""
    asks = bool(questions(reply))
    return (
        (("too_many_questions" in feedback or "wants_empathy" in feedback) and asks)
        or ("misunderstood" in feedback and not _APOLOGY.search(reply))
        or ("wants_stop" in feedback and not _ENDING.search(reply))
    )


def audit(turns: Sequence[tuple[str, str]], before: int = 0, fixed: Collection[str] = ()) -> dict:
    """Counts for one session: ``turns`` are its merged (role, text) blocks in order; the first
    ``before`` counselor blocks (a scripted opening) and any block in ``fixed`` (the bot's own
    messages, such as the crisis protocol) are said but not counted as replies."""
    client: list[str] = []
    said: list[str] = []
    out = Counter()
    openers: Counter = Counter()
    seen_counselor = 0
    for k, (role, text) in enumerate(turns):
        if role == "client":
            client.append(text)
            continue
        seen_counselor += 1
        if seen_counselor <= before or text in fixed:
            said.append(text)
            continue
        out["replies"] += 1
        found = problems(text, facts(client))
        out["facts_reasked"] += any(p.startswith("ask-") for p in found)
        out["invented"] += sum(p.startswith("invented:") for p in found)
        out["announces_end"] += "announces-end" in found
        out["circling"] += re_asks(text, said)
        out["near_duplicates"] += near_duplicate(text, said)
        openers[opener(text)] += 1
        prev = turns[k - 1] if k else None
        fb = client_feedback(prev[1]) if prev and prev[0] == "client" else set()
        if fb:
            out["feedback"] += 1
            out["feedback_ignored"] += ignores(text, fb)
        said.append(text)
    n = out["replies"]
    top, count = openers.most_common(1)[0] if openers else ("", 0)
    keys = ("replies", "facts_reasked", "invented", "announces_end", "circling", "near_duplicates")
    return {
        **{key: out[key] for key in keys},
        "feedback": out["feedback"],
        "feedback_ignored": out["feedback_ignored"],
        "top_opener": top,
        "top_opener_share": count / n if n else 0.0,
    }


def summary(sessions: Sequence[dict]) -> dict:
    """The audits of many sessions: per-reply rates, per-session means and the worst session."""
    n = sum(s["replies"] for s in sessions) or 1
    shares = [s["top_opener_share"] for s in sessions if s["replies"]]
    fb = sum(s["feedback"] for s in sessions)
    return {
        "sessions": len(sessions),
        "replies": sum(s["replies"] for s in sessions),
        "facts_reasked_share": sum(s["facts_reasked"] for s in sessions) / n,
        "invented_per_session": statistics.fmean(s["invented"] for s in sessions) if sessions else 0.0,
        "sessions_announcing_end": sum(s["announces_end"] > 0 for s in sessions),
        "circling_per_session": statistics.fmean(s["circling"] for s in sessions) if sessions else 0.0,
        "circling_max": max((s["circling"] for s in sessions), default=0),
        "near_duplicate_share": sum(s["near_duplicates"] for s in sessions) / n,
        "top_opener_share_mean": statistics.fmean(shares) if shares else 0.0,
        "top_opener_share_max": max(shares, default=0.0),
        "feedback": fb,
        "feedback_ignored": sum(s["feedback_ignored"] for s in sessions),
    }
