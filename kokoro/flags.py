"""The paper's screening flags, predicted from the counselor's words (issue 33; paper App. A.3).

KokoroChat's rule sets a session's total to 0 when the client flagged a harmful remark made from
ignorance or another potentially unethical remark. Our scorers predict the 20 items, never the
flags; this module predicts the two zeroing flags from the counselor turns with the rules the bot
screens its own drafts with (kokoro/screening_lexicon.yaml: one rule, one place, so the bot never
sends what its own score would zero). A turn matching a ``harmful`` entry predicts
``harmful_due_to_ignorance``; an ``unethical`` entry ``other_potentially_unethical``. The bot-only
categories (medical, occult, sexual) do not set a flag: on real counselors' turns they mostly match
reflections of the client's own words. ``unwilling_to_continue`` (the client's side, which halves a
total) is not predicted: for a client never seen it would be wrong more often than right
(scripts/unwilling_probe.py; docs/training.md, "The third flag").

Every scorer's total goes through ``predicted_total`` — the CPU scorer, a scorer GGUF, the endpoint —
in the bot's card, ``evaluation scores`` and ``--perturb``, ``evaluation rescore`` and ``simulate``;
the flags are stored and reported beside the total. Whether they zero it is ``ZERO_RULE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .items import total_score

FLAG_OF = {"harmful": "harmful_due_to_ignorance", "unethical": "other_potentially_unethical"}

# Off, by measurement (docs/training.md, "Harmful remarks"): the rules find 181 of the 198 harmful
# training lines but 5 of 70 on a held-out list written before them, none of KokoroChat's 12
# client-flagged sessions, and match 3.03 % of real test sessions (never read while tuning; 0.62 % of the
# validation sessions they were tuned on), where nobody was hurt. Zeroing
# on them would take a real client's score away more often than it would catch a remark. Turn it on
# when a held-out list and the client-flagged sessions say the flags are right far more than wrong.
ZERO_RULE = False


def remark_flags(turns: Sequence) -> dict[str, list[int]]:
    """Flag → indices (into ``turns``, kokoro.dataset.Turn) of the counselor turns that raise it; flags
    not raised are absent."""
    from .screening import screen_draft

    out: dict[str, list[int]] = {}
    for i, t in enumerate(turns):
        if t.role != "counselor":
            continue
        for category in screen_draft(t.text):
            if category in FLAG_OF:
                out.setdefault(FLAG_OF[category], []).append(i)
    return out


def flagged_total(items: Sequence[int], flags: dict, zero_rule: bool = ZERO_RULE) -> int:
    """The total of predicted ``items`` given the session's ``flags`` (``remark_flags``), with the
    paper's zero rule on them when ``zero_rule``. Flags depend on the turns only: an evaluation over
    several scorers computes them once per session."""
    return total_score(items, {k: True for k in flags} if zero_rule else {})


def predicted_total(
    items: Sequence[int], turns: Sequence, zero_rule: bool = ZERO_RULE
) -> tuple[int, dict[str, list[int]]]:
    """The total of predicted ``items`` — with the paper's zero rule on the flags the counselor's words
    predict when ``zero_rule`` — and those flags (flag → counselor turn indices)."""
    flags = remark_flags(turns)
    return flagged_total(items, flags, zero_rule), flags
