"""What the client has told the counselor in this session, from their own words, and the rules a
draft reply must keep because of it (issue 32). Torch-free and model-free: the bot, `evaluation
simulate` and the tests call the same functions.

* ``facts(client_texts)``: age, gender and the people in the client's story (relation keys).
  Computed from the session's stored client turns each time, so it is deleted with them.
* ``known_questions(facts)``: questions the client has already answered, for the repetition
  control's list of what not to ask again (a draft that re-asks them gets the second try).
* ``problems(draft, facts)`` and ``repair(draft, …)``: what a draft must not do — ask for a fact it
  was told, name a relation the client never mentioned, announce the end of the session — and the
  draft without the sentences that do it.
* ``client_feedback(text)``: what a client says about the conversation itself (too many questions,
  wants empathy, was misunderstood, wants to stop), and ``shape`` answers it; ``takes_leave(text)``:
  the client says goodbye (answered as wanting to stop: how to end, or to go on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .conversation import questions, sentences, without

_KANJI = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _number(s: str) -> int | None:
    """Arabic, full-width or kanji numerals up to 99 (十九, 六十, 二十五)."""
    s = s.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if s.isdigit():
        return int(s)
    if not s or any(c not in _KANJI and c != "十" for c in s):
        return None
    if "十" not in s:
        return _KANJI.get(s) if len(s) == 1 else None
    tens, _, ones = s.partition("十")
    return (_KANJI.get(tens, 0) if tens else 1) * 10 + (_KANJI.get(ones, 0) if ones else 0)


_NUM = r"([0-9０-９]{1,2}|[一二三四五六七八九十]{1,3})"
_AGE = [  # (pattern, what it gives): first match wins, in this order
    (re.compile(_NUM + r"\s*(?:歳|才)"), lambda m: str(_number(m.group(1)))),
    (re.compile(_NUM + r"\s*代"), lambda m: f"{_number(m.group(1))}代"),
    (re.compile(r"アラサー"), lambda m: "30代"),
    (re.compile(r"アラフォー"), lambda m: "40代"),
    (re.compile(r"アラフィフ"), lambda m: "50代"),
    (re.compile(r"還暦"), lambda m: "60代"),
    (re.compile(r"高校生|高校\s*[1-3１-３一二三]\s*年|(?<![最])高\s*[1-3１-３一二三](?![0-9])"), lambda m: "高校生"),
    (re.compile(r"中学生|中学\s*[1-3１-３一二三]\s*年|中\s*[1-3１-３一二三](?:です|の|、|。|$)"), lambda m: "中学生"),
    (re.compile(r"大学生|大学\s*[1-6１-６一二三四五六]\s*年|大学院生|専門学生"), lambda m: "大学生"),
    (re.compile(r"小学生|小学\s*[1-6１-６一二三四五六]\s*年"), lambda m: "小学生"),
]
# gender only from self-description: 男/女 as a word about oneself, not inside 彼女, 女の人, 男友達
_GENDER = [
    (re.compile(r"男性|男子|(?<![彼の])男(?:です|だ|、|。|\s|$|の(?:会社員|学生|大学生|高校生))"), "男性"),
    (
        re.compile(r"女性|女子|主婦|(?<![彼の])女(?:です|だ|、|。|\s|$|の(?:会社員|学生|大学生|高校生))"),
        "女性",
    ),
]
# relation key → the ways a client or a counselor names that person
RELATIONS = {
    "mother": "(?<![祖叔伯])母|お母さん|お母様|お母さま|母親|ママ|おかん|お袋|おふくろ",
    "father": "(?<![祖叔伯])父|お父さん|お父様|お父さま|父親|パパ|親父|おやじ",
    "husband": "夫|旦那|主人|ご主人|夫さん",
    "wife": "妻|嫁|奥さん|奥様|家内",
    "partner": "彼氏|恋人|パートナー|婚約者|交際相手",
    "child": "息子|娘|子供|子ども|お子さん|お子様",
    "sibling": "兄|姉|弟|妹|兄弟|姉妹|きょうだい|お兄さん|お姉さん",
    "grandparent": "祖母|祖父|おばあちゃん|おじいちゃん|おばあさん|おじいさん",
    "boss": "上司|部長|課長|係長|店長|社長",
    "colleague": "同僚|先輩|後輩",
    "friend": "友達|友人|親友|友だち",
    "teacher": "先生|担任|教師",
}
_BOTH_PARENTS = re.compile(r"両親|(?<![父母])親(?![友戚切身しみ密近睦善交])")
_REL = {k: re.compile(f"(?:{v})") for k, v in RELATIONS.items()}
_NOT_PERSON = re.compile(  # words that hold a relation's character without naming anyone
    r"(?:父|母)(?:の日|校|国|語)|祖国|主人公|姉妹校|兄弟子|弟子|先輩後輩|大丈夫|丈夫|工夫|転嫁|稲妻|分母|酵母"
)
_END_ANNOUNCE = re.compile(
    r"終了(?:させて|いたし|します|とさせ|しましょう|になります)|終わりに(?:しましょう|させて|します)|"
    r"(?:本日|今日)の(?:ご?相談|お話)は(?:ここまで|これで)|これで(?:終わり|おしまい)"
)
# a sign-off: the counselor taking leave (thanks in the past tense, 「お疲れさまでした」, 「失礼いたします」,
# a goodbye, "come again", 「お大事に」, "time is up"). Read per sentence: 「お仕事お疲れさまでした」 is a
# sign-off too in a reply, and cutting that one sentence costs little, while a client at risk told
# 「お疲れさまでした。」 hears that the session is over.
_SIGN_OFF = re.compile(
    r"(?:ありがとう|有難う|有り難う)ございました|お疲れ(?:さま|様)でした|失礼(?:いた|致)?します(?:ね)?[。！!]*$|"
    r"(?:さようなら|さよなら)(?![」』]?(?:と|って))|おやすみなさい|^(?:それ)?では(?:、?また)?[。！!]*$|またね[。！!]*$|"
    r"また[^。？?]{0,14}(?:ご相談|ご連絡|お話しに|お越し|来て|いらして|相談しに)(?:ください|下さい)|"
    r"お待ちして(?:い|お)ります|またのご(?:利用|相談)|(?:お話し|お会い)できるのを楽しみ|お大事に(?:な(?:さって|さい)|して)?(?:ください|下さい)?(?:ね)?[。！!]*$|"
    r"時間(?:に|と)なりました(?:[。！!]*$|ので[、]?(?:この|その|そろそろ|これで|本日|今日|終|失礼))|時間が(?:来|き)ました[。！!]*$|(?:この|その)(?:あたり|辺|へん)(?:で[。！!]*$|に(?:したい|しま|させ))|"
    r"(?:ここ|これ)まで(?:に|と)(?:しましょう|しておきましょう|します|させて|いたし)|以上(?:です|となります|になります)[。！!]*$|おしまい"
)
# a client taking leave (a goodbye, thanks in the past tense, good night, "I'll come again", "that's all
# for today", asking to end): said, not quoted (「さようなら」と言われた, ありがとうございましたって言えた)
_LEAVE = re.compile(
    r"(?:ありがとう|有難う|有り難う)ございました|お世話になりました|お疲れ(?:さま|様)でした|"
    r"さようなら|さよなら|バイバイ|ばいばい|じゃあね|またね|(?:それ)?では、?(?:また(?:ね|今度|いつか)?[。！!]*$|これで)|^(?:それ)?では[。！!]*$|"
    r"おやすみなさい|おやすみ(?![なしでできを])|失礼(?:いた|致)?します|(?:もう|そろそろ)?寝ます|寝るね|"
    r"また(?:来|き)(?:ます|るね|ますね)|また(?:ご?相談|お?話し)(?:させて|します|しに|に来)|"
    r"(?:これで|ここまでに?)(?:します|終わり|おしまい)|(?:もう|そろそろ)行(?:く|きます|かなきゃ|かないと)(?:ね)?[。！!]*$|"
    r"(?<![0-9０-９時分に])終了(?:で|に|を)?(?:お願い|して|させ|します|とさせ|ok|OK)"
)
# what follows a leave-taking that quotes it or speaks of it (「さようなら」と言われた, ありがとうございましたって
# 言えた, さよならも言えず, これでおしまいかと思うと); after a comma or an exclamation only と, って or の
_QUOTED = re.compile(
    r"^[ー〜っ]*[」』]?(?:[、,。！!…]+\s*[」』]?(?:と|って|の)|と|って|を|が|は|も|の|に|か|なんて|とか)"
)
# after the leave-taking, the client goes on: a question, a connective, another thing to talk about
_GOES_ON = re.compile(
    r"[?？]|か[。]?$|^(?:それで|でも|実は|ところで|あと|次に?|ただ|だけど|けど|それと|あの|えっと)|もうひとつ|もう一つ|続き|聞いて"
)
_DECOR = re.compile(r"[（(][^）)]{0,12}[）)]|[\U0001F000-\U0001FFFF\u2600-\u27BF★☆♪〜~ｗw]+|m\(_ _\)m")


def takes_leave(text: str) -> bool:
    """The client's message takes leave of the counselor (``_LEAVE``, not quoted), and nothing after
    that opens more (``_GOES_ON``): 「ありがとうございました。さようなら」, 「もう寝ます。おやすみなさい」,
    not 「ありがとうございました。実はもうひとつ…」 nor 「さようならと言われました」."""
    every = sentences(_DECOR.sub("", text.strip().strip("（）()「」 \u3000")))
    for k, s in enumerate(every):
        rest = "".join(every[k + 1 :])  # a quote may run past the sentence: 「またね！って感じで」
        found = list(_LEAVE.finditer(s))
        if not found or _QUOTED.match(s[found[-1].end() :] + rest):  # 「じゃあね、またね！って」: all quoted
            continue
        said = [m for m in found if not _QUOTED.match(s[m.end() :] + rest)]
        if said and not any(_GOES_ON.search(x.strip("。！!")) for x in every[k + 1 :]):
            if not _GOES_ON.search(s[said[-1].end() :].strip("。！!、")):
                return True
    return False


# the role-play platform's scheduling before a session starts (「お時間になりましたら始めさせていただきます」):
# KokoroChat's counselors say it almost only in a session's first 10 % (scripts/sign_off_probe.py: 380 of
# 381 utterances with it, ids 1-2000), and the demo says it mid-session
# (「お時間になりましたら、相談員と話を聞かせていただきますね」)
_SCHEDULE = re.compile(r"お?時間になりましたら|お?時間になったら|お時間まで")
_AGE_ASK = re.compile(r"年齢|歳|才|おいくつ|何年生|学年")
_GENDER_ASK = re.compile(r"性別|男性|女性")
# asking what the session is about (not a follow-up such as 「どんなことがあったんですか」)
_TOPIC_ASK = re.compile(r"(?:どのような|どんな|どういった)ご?相談|ご?相談(?:内容|したいこと|されたいこと)")
FEEDBACK = {  # what a client says about the conversation itself
    "too_many_questions": re.compile(
        r"質問(?:が多|ばかり|ばっかり|ばっか|攻め|多|は(?:もう)?(?:いい|やめ))|(?:色々|いろいろ|そんなに)聞かないで|聞かれてばかり"
    ),
    "wants_empathy": re.compile(
        r"共感|(?:ただ|とにかく)(?:話を)?聞いて(?:ほしい|欲しい|もらいたい)|気持ちを(?:わかって|分かって)ほしい|寄り添って"
        r"|(?:わかって|分かって)(?:ほしい|欲しい)"
    ),
    "misunderstood": re.compile(
        r"そういう(?:意味|こと)じゃ|そうじゃなくて|そこじゃなくて|違うんです|誤解|(?:わかって|分かって)ない(?:です|ね|よ)?$"
    ),
    "wants_stop": re.compile(
        r"^(?:もう)?(?:やめたい|やめます|止めたい)(?:です)?[。！!]*$|もういいです|終わりにしたい|終わりにします|もう終わり"
    ),
}
_NOT_FEEDBACK = {"wants_empathy": re.compile(r"(?:母|父|親|夫|妻|彼|友達|上司|誰)(?:に|には|にも)は?気持ちを")}
QUIET_TURNS = 3  # after "too many questions", the next replies ask nothing


@dataclass(frozen=True)
class Facts:
    age: str | None = None
    gender: str | None = None
    people: frozenset[str] = field(default_factory=frozenset)
    topic: bool = False  # the client has said what they want to talk about

    def known(self) -> list[str]:
        return [k for k in ("age", "gender") if getattr(self, k)]


def age_of(text: str) -> str | None:
    for pattern, value in _AGE:
        m = pattern.search(text)
        if m:
            v = value(m)
            if v and not v.startswith("None"):
                return v
    return None


def gender_of(text: str) -> str | None:
    for pattern, value in _GENDER:
        if pattern.search(text):
            return value
    return None


def people_of(text: str) -> frozenset[str]:
    text = _NOT_PERSON.sub("", text)
    found = {k for k, rx in _REL.items() if rx.search(text)}
    if _BOTH_PARENTS.search(text):
        found |= {"mother", "father"}
    return frozenset(found)


_GREETING = re.compile(
    r"こんにちは|こんばんは|はじめまして|初めまして|よろしくお願いします|よろしくおねがいします|お願いします"
)

_ACK_LINE = re.compile(r"(?m)^\s*(?:こちらこそ|はい|ええ|うん|どうも)[、。！!\s]*$")  # a burst's 「はい」 says nothing


def has_topic(text: str) -> bool:
    """Does a message say more than a greeting, an age and a gender (something to talk about)?"""
    rest = _ACK_LINE.sub("", _GREETING.sub("", text))
    for pattern, _ in _AGE:
        rest = pattern.sub("", rest)
    for pattern, _ in _GENDER:
        rest = pattern.sub("", rest)
    rest = re.sub(r"[\s、。！!？?・,.]|です|の|で|会社員|学生|主婦", "", rest)
    return len(rest) >= 6


def facts(client_texts: Iterable[str]) -> Facts:
    age = gender = None
    people: set[str] = set()
    topic = False
    for t in client_texts:
        age = age or age_of(t)
        gender = gender or gender_of(t)
        people |= people_of(t)
        topic = topic or has_topic(t)
    return Facts(age, gender, frozenset(people), topic)


def known_questions(f: Facts) -> list[str]:
    """Questions the client has answered already, worded as a counselor asks them (for the
    repetition control's ``avoid``: a draft re-asking one gets the second try)."""
    out = []
    if f.age:
        out.append("年齢を教えていただけますか？")
    if f.gender:
        out.append("性別を教えていただけますか？")
    if f.topic:
        out.append("今日はどのようなご相談でしょうか？")
    return out


def problems(draft: str, f: Facts) -> list[str]:
    """What the draft does that it must not: ask-age / ask-gender / ask-topic (when told), invented:<relation>
    (a person the client never mentioned), announces-end, schedules (the platform's "when it is time")."""
    out = []
    qs = questions(draft)
    if f.age and any(_AGE_ASK.search(q) for q in qs):
        out.append("ask-age")
    if f.gender and any(_GENDER_ASK.search(q) for q in qs):
        out.append("ask-gender")
    if f.topic and any(_TOPIC_ASK.search(q) for q in qs):
        out.append("ask-topic")
    out += [f"invented:{r}" for r in sorted(people_of(draft) - f.people)]
    if ends_session(draft):
        out.append("announces-end")
    if _SCHEDULE.search(draft):
        out.append("schedules")
    return out


def ends_session(draft: str) -> bool:
    """The draft declares the session over (「終了させていただきます」) or takes leave in one of its
    sentences (_SIGN_OFF). Only the client, the session limit or the idle timer ends a session."""
    if _END_ANNOUNCE.search(draft):
        return True
    return any(_SIGN_OFF.search(s.strip("（）()「」 \u3000")) for s in sentences(draft))


LISTEN = "そうだったんですね。お話ししてくださって、ありがとうございます。"  # when nothing of a draft can stay
GENTLE = (  # instead of a question asked before in other words (kokoro.generation.next_turn): no pressure
    "ゆっくりで大丈夫ですよ。思いついたことから、話してみてくださいね。",
    "言葉にしにくいこともありますよね。ここでは、話したいことだけで大丈夫です。",
    "お話ししてくださって、ありがとうございます。続きがあれば、いつでも聞かせてください。",
)


def repair(draft: str, f: Facts, no_questions: bool = False) -> str:
    """The draft without the sentences that break a rule (and, with ``no_questions``, without its
    questions); ``LISTEN`` when nothing is left."""
    every = sentences(draft)
    cut = [s for s in every if problems(s, f) or (no_questions and questions(s))]
    if not cut:
        return draft.strip()  # nothing to cut: the draft as written
    return without(draft, cut) if len(cut) < len(every) else LISTEN  # the rest as written, line breaks kept


def client_feedback(text: str) -> set[str]:
    t = text.strip()
    return {k for k, rx in FEEDBACK.items() if rx.search(t) and not (k in _NOT_FEEDBACK and _NOT_FEEDBACK[k].search(t))}


APOLOGY = "うまく受け取れていなかったようで、ごめんなさい。"
EMPATHY = "そのお気持ち、しっかり受け止めています。"
OFFER_END = (
    "ここまでお話ししてくださって、ありがとうございます。終わりにしたいときは「終了」と送ってください。"
    "もう少し話したくなったら、このまま続けてくださいね。"
)


def shape(draft: str, f: Facts, client_turns: Sequence[str]) -> tuple[str, list[str]]:
    """The reply the client gets: the draft repaired for the session's facts, then answering what the
    client said about the conversation in their latest turn (and asking nothing for QUIET_TURNS
    replies after they said there were too many questions). Returns (text, what was applied)."""
    applied = problems(draft, f)
    latest = client_feedback(client_turns[-1]) if client_turns else set()
    if "wants_stop" in latest or client_turns and takes_leave(client_turns[-1]):  # not the model's goodbye
        return OFFER_END, applied + ["offer-end"]
    quiet = any("too_many_questions" in client_feedback(t) for t in client_turns[-QUIET_TURNS:])
    text = repair(draft, f, no_questions=quiet or "wants_empathy" in latest)
    if quiet and questions(draft):
        applied.append("no-questions")
    if "wants_empathy" in latest:
        text, applied = EMPATHY + text, applied + ["empathy"]
    if "misunderstood" in latest:
        text, applied = APOLOGY + text, applied + ["apology"]
    return text, applied


# ------------------------------------------------------------ the labelled sets (kokoro/rule_sets)
def _predict(fieldname: str, text: str) -> str:
    if fieldname == "age":
        return age_of(text) or "-"
    if fieldname == "gender":
        return gender_of(text) or "-"
    if fieldname == "people":
        return ",".join(sorted(people_of(text))) or "-"
    if fieldname == "ends":  # a counselor's draft, not a client's line
        return "announces-end" if ends_session(text) else "-"
    if fieldname == "leaves":  # a client's whole message
        return "takes-leave" if takes_leave(text) else "-"
    return ",".join(sorted(client_feedback(text))) or "-"


def evaluate(path) -> dict:
    """Accuracy per field on a labelled set (field, expected, text); the misses, by line number."""
    from pathlib import Path

    per: dict[str, list[int]] = {}
    misses = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fieldname, expected, text = line.split("\t")
        got = _predict(fieldname, text)
        per.setdefault(fieldname, [0, 0])
        per[fieldname][0] += got == expected
        per[fieldname][1] += 1
        if got != expected:
            misses.append({"line": n, "field": fieldname, "expected": expected, "got": got})
    total = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
    return {
        "fields": {k: {"right": v[0], "of": v[1]} for k, v in per.items()},
        "right": total[0],
        "of": total[1],
        "misses": misses,
    }
