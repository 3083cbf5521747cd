"""The 20 client-feedback items, the three screening flags and the total-score rule.

One ordered definition, used by every part of the project. ``key`` is the English key
exactly as the KokoroChat data spells it (including ``clarified_issues_cleraly``), ``label_ja``
the Japanese key of ``review_by_client_jp``; ``group`` and ``aspect`` follow Table 2 of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

OVERALL = "Overall Impression of the Conversation"
SKILLS = "Evaluation of Counseling Skills"
MIN_ITEM, MAX_ITEM = 0, 5
FLAG_CHECKED = "チェックあり"


@dataclass(frozen=True)
class Item:
    number: int  # 1..20, the paper's D1..D20
    key: str  # English key in review_by_client_en
    label_ja: str  # Japanese key in review_by_client_jp
    label_en: str  # the paper's wording
    group: str  # Table 2 category
    aspect: str  # Table 2 aspect

    @property
    def dim(self) -> str:
        return f"D{self.number}"


def _items() -> tuple[Item, ...]:
    rows = [
        (
            "felt_heard_and_understood",
            "聴いてもらえた、わかってもらえたと感じた",
            "Felt heard and understood.",
            OVERALL,
            "Sense of Validation",
        ),
        ("felt_respected", "尊重されたと感じた", "Felt respected.", OVERALL, "Sense of Validation"),
        ("gained_new_insights", "新しい気づきや体験があった", "Gained new insights.", OVERALL, "Awareness and Hope"),
        (
            "felt_hopeful_or_expectant",
            "希望や期待を感じられた",
            "Felt hopeful or expectant.",
            OVERALL,
            "Awareness and Hope",
        ),
        ("concerns_were_addressed", "取り組みたかったことを扱えた", "Concerns were addressed.", OVERALL, "Engagement"),
        (
            "thought_through_concerns_together",
            "一緒に考えながら取り組めた",
            "Thought through concerns together.",
            OVERALL,
            "Engagement",
        ),
        (
            "conversation_had_good_rhythm",
            "やりとりのリズムがあっていた",
            "The conversation had a good rhythm.",
            OVERALL,
            "Flow and Comfort",
        ),
        (
            "conversation_felt_comfortable",
            "居心地のよいやりとりだった",
            "The conversation felt comfortable.",
            OVERALL,
            "Flow and Comfort",
        ),
        (
            "felt_appropriate_and_satisfying",
            "全体として適切でよかった",
            "Felt appropriate and satisfying.",
            OVERALL,
            "Overall Evaluation",
        ),
        (
            "conversation_was_valuable",
            "今回の相談は価値があった",
            "The conversation was valuable.",
            OVERALL,
            "Overall Evaluation",
        ),
        (
            "conversation_started_smoothly",
            "相談開始の円滑さ",
            "The conversation started smoothly.",
            OVERALL,
            "Flow of Conversation",
        ),
        (
            "conversation_ended_well",
            "相談終了のタイミング（不必要に聴きすぎていないか）、円滑さ",
            "The conversation ended well.",
            OVERALL,
            "Flow of Conversation",
        ),
        ("showed_acceptance_and_empathy", "受容・共感", "Showed acceptance and empathy.", SKILLS, "Counseling Skills"),
        (
            "provided_acknowledgment_and_affirmation",
            "肯定・承認",
            "Provided acknowledgment and affirmation.",
            SKILLS,
            "Counseling Skills",
        ),
        (
            "asked_effective_questions",
            "的確な質問による会話の促進",
            "Asked effective questions to foster dialogue.",
            SKILLS,
            "Counseling Skills",
        ),
        (
            "summarized_key_points_effectively",
            "要約",
            "Summarized key points effectively.",
            SKILLS,
            "Counseling Skills",
        ),
        ("clarified_issues_cleraly", "問題の明確化", "Clarified issues clearly.", SKILLS, "Counseling Skills"),
        (
            "helped_identify_goals",
            "この相談での目標の明確化",
            "Helped identify goals for the conversation.",
            SKILLS,
            "Counseling Skills",
        ),
        (
            "offered_actionable_suggestions",
            "次の行動につながる提案",
            "Offered actionable suggestions.",
            SKILLS,
            "Counseling Skills",
        ),
        (
            "encouraged_and_instilled_hope",
            "勇気づけ・希望の喚起",
            "Encouraged and instilled hope.",
            SKILLS,
            "Counseling Skills",
        ),
    ]
    return tuple(Item(i + 1, *row) for i, row in enumerate(rows))


ITEMS: tuple[Item, ...] = _items()
ITEM_KEYS: tuple[str, ...] = tuple(it.key for it in ITEMS)


@dataclass(frozen=True)
class Flag:
    key: str
    label_ja: str
    label_en: str
    effect: str  # "zero" or "halve"


FLAGS: tuple[Flag, ...] = (
    Flag(
        "harmful_due_to_ignorance",
        "無理解と軽率さによる傷つけ発言",
        "Harmful remarks from lack of understanding or carelessness.",
        "zero",
    ),
    Flag(
        "other_potentially_unethical",
        "その他の倫理違反が疑われる発言",
        "Other potentially unethical statements.",
        "zero",
    ),
    Flag("unwilling_to_continue", "離脱", "The client is unwilling to continue.", "halve"),
)
FLAG_KEYS: tuple[str, ...] = tuple(f.key for f in FLAGS)


# Table 2 as (category, aspect, items) in order, for reports and the feedback card.
def table2_groups() -> list[tuple[str, str, tuple[Item, ...]]]:
    out: list[tuple[str, str, tuple[Item, ...]]] = []
    for it in ITEMS:
        if out and out[-1][1] == it.aspect:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + (it,))
        else:
            out.append((it.group, it.aspect, (it,)))
    return out


def check_item_value(value: object) -> int:
    """Return ``value`` as an item score or raise ValueError naming the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_ITEM <= value <= MAX_ITEM:
        raise ValueError(f"must be an integer {MIN_ITEM}-{MAX_ITEM}, got {value!r}")
    return value


def total_score(items: Sequence[int], flags: Mapping[str, bool] | None = None) -> int:
    """The paper's total: sum of the 20 items; 0 if a "zero" flag is set; floor(sum/2) if
    ``unwilling_to_continue`` is set (Appendix A.3)."""
    if len(items) != len(ITEMS):
        raise ValueError(f"expected {len(ITEMS)} item scores, got {len(items)}")
    total = sum(check_item_value(v) for v in items)
    flags = flags or {}
    unknown = set(flags) - set(FLAG_KEYS)
    if unknown:
        raise ValueError(f"unknown screening flag(s) {sorted(unknown)}; known: {list(FLAG_KEYS)}")
    if any(flags.get(f.key) for f in FLAGS if f.effect == "zero"):
        return 0
    if any(flags.get(f.key) for f in FLAGS if f.effect == "halve"):
        return total // 2
    return total
