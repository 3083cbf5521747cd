"""What the bot says outside the counseling model: consent, opening, notices, fallbacks.
(Counseling prompts live in kokoro.prompts; this is interface copy.)"""

from __future__ import annotations

import re

CONSENT, DECLINE, START, END = "action=consent", "action=decline", "action=start", "action=end"
DELETE, KEEP = "action=delete", "action=keep"
CHECKIN_YES, CHECKIN_NO = "action=checkin-yes", "action=checkin-no"
HUMAN, CONTACTS, DELETE_ASK = "action=human", "action=contacts", "action=delete-ask"  # the rich menu's
END_WORDS = ("終了", "おわり", "終わり")
DELETE_WORDS = ("削除",)
# a whole message asking for a person (not one that mentions wanting to talk to people in general)
HUMAN_REQUEST = re.compile(
    r"^\s*(?:人間?|ひと|相談員|カウンセラー|スタッフ)(?:さん|の方|の人)?(?:と|に)"
    r"(?:話したい|話がしたい|話させて|代わって|かわって|替わって)(?:です|ください|下さい)?\s*[。！!？?]*\s*$"
)


def control_word(text: str) -> str | None:
    """What a whole message asks the bot to do rather than says to the counselor: ``delete``,
    ``end``, ``human`` (a person), or None. The one place these words are read: the session's
    handler acts on them, and the safety follow-up must not read them as an answer."""
    t = text.strip()
    if t in DELETE_WORDS:
        return "delete"
    if t in END_WORDS:
        return "end"
    return "human" if HUMAN_REQUEST.match(t) else None


CRISIS_CONTACTS = (
    "・緊急のときは 119（救急）/ 110（警察）\n"
    "・よりそいホットライン 0120-279-338（24時間）\n"
    "・こころの健康相談統一ダイヤル 0570-064-556"
)


def text(t: str, quick: list[tuple[str, str]] | None = None) -> dict:
    m: dict = {"type": "text", "text": t}
    if quick:
        m["quickReply"] = {
            "items": [
                {"type": "action", "action": {"type": "postback", "label": label, "data": data, "displayText": label}}
                for label, data in quick
            ]
        }
    return m


def greeting() -> list[dict]:
    return [
        text(
            "友だち追加ありがとうございます。\n"
            "こちらは、KokoroChat（カウンセラーによるロールプレイ対話のデータ）で学習したAIの相談相手です。研究用の試作で、"
            "医療機関やカウンセラーの代わりではありません。\n\n"
            "・会話の内容は、この相談の運営と改善のためにデータベースに保存されます。\n"
            "・「削除」と送ると、保存された内容をすべて削除できます。\n"
            "・つらくて命の危険を感じるときは、すぐに次の窓口へ連絡してください。\n"
            + CRISIS_CONTACTS
            + "\n\n内容に同意いただける場合は「同意する」を押してください。",
            [("同意する", CONSENT), ("同意しない", DECLINE)],
        )
    ]


def consent_needed() -> list[dict]:
    return [
        text("相談を始める前に、ご案内への同意をお願いしています。", [("同意する", CONSENT), ("同意しない", DECLINE)])
    ]


def consented() -> list[dict]:
    return [
        text(
            "ありがとうございます。話したくなったら「相談を始める」を押すか、そのままメッセージを送ってください。",
            [("相談を始める", START)],
        )
    ]


def declined() -> list[dict]:
    return [
        text(
            "わかりました。同意いただけない間は、会話の内容を保存せず、相談もお受けしません。"
            "気が変わったら「同意する」を押してください。",
            [("同意する", CONSENT)],
        )
    ]


GREETING = "こんにちは。相談員です。よろしくお願いします。"
OPENING = (
    GREETING + "\n"
    "はじめに、差し支えなければ年齢と性別を教えていただけますか？ それから、今日はどのようなご相談でしょうか。"
)


def opening_text(known=None) -> str:
    """The counselor's opening, asking only for what the client has not said yet (``known``: a
    kokoro.memory.Facts of their first message; None or nothing known: the full opening)."""
    if known is None or not (known.age or known.gender or known.topic):
        return OPENING
    missing = [w for w, have in (("年齢", known.age), ("性別", known.gender)) if not have]
    ask = f"差し支えなければ{'と'.join(missing)}を教えていただけますか？" if missing else ""
    if known.topic:
        return GREETING + ("\n" + ask if ask else "\nメッセージをありがとうございます。")
    return (
        GREETING
        + "\nありがとうございます。"
        + ask
        + ("それから、" if ask else "")
        + "今日はどのようなご相談でしょうか。"
    )


def opening(known=None) -> list[dict]:
    return [text(opening_text(known), [("相談を終える", END)])]


def closing(reason: str) -> list[dict]:
    lead = {
        "user": "",
        "idle": "しばらくお返事がなかったので、",
        "limit": "相談時間の上限になりましたので、",
        "unfollow": "",
        "counselor": "",
    }.get(reason, "")
    return [
        text(
            f"{lead}本日の相談はここまでとさせていただきます。お話しいただきありがとうございました。"
            "また話したくなったら、いつでもメッセージを送ってください。",
            [("相談を始める", START)],
        )
    ]


SAFETY_FOLLOWUPS = {
    # the protocol's two questions got no clear answer: ask about a means alone (yes / no answers it)
    "means_question": "教えてくださって、ありがとうございます。もうひとつだけ確認させてください。\n"
    "今、自分を傷つけるのに使えそうなもの（薬や刃物、ひもなど）が、手の届くところにありますか？",
    # another crisis line while the protocol's questions are still open: not the protocol word for word
    # again (its resources are just above), but its question again, with 119 and the first lines to call
    "again": "話してくれて、ありがとうございます。それほどつらい気持ちなのですね。\n"
    "教えてください。今、あなたは安全な場所にいますか？ 自分を傷つける方法が手の届くところにありますか？\n"
    "今すぐ危険を感じるときは、ためらわずに電話してください。\n" + CRISIS_CONTACTS + "\n\nわたしはここにいます。",
    # another crisis line while the means-safety message waits (a means is known to be at hand): not the
    # protocol again, whose question about a means they already answered, but its step, someone now, 119
    "again_means": "話してくれて、ありがとうございます。それほどつらい気持ちなのですね。\n"
    "手の届くところにあるものを、今すぐ少しでも自分から離してください。"
    "ひとりでいないで、誰かに電話をして、そばにいてもらってください。\n"
    "今にも行動してしまいそうなとき、もう飲んだり傷つけたりしてしまったときは、すぐに 119 に電話してください。\n"
    + CRISIS_CONTACTS
    + "\n\nわたしはここにいます。離せたら、教えてもらえますか？",
    # a means at hand or a dangerous place: distance from it, not being alone, 119 for an act begun
    "means_safety": "教えてくださって、ありがとうございます。話してくれて、本当によかったです。\n"
    "今はとても危ないときかもしれません。できれば今すぐ、それを自分から離してください。"
    "別の部屋や家の外に置く、家族など誰かに預ける、それだけでも大切な一歩です。"
    "危ない場所にいるときは、そこから離れて、人のいる明るい場所へ移ってください。\n"
    "もう飲んだり、傷つけたりしてしまったときは、すぐに 119 に電話してください。\n"
    + CRISIS_CONTACTS
    + "\n\nわたしはここにいます。離せたら、教えてもらえますか？",
    # still at hand after that: someone with them now, 119
    "still": "離すのがむずかしいときもありますよね。責めたりはしません。\n"
    "それなら、今すぐ誰かに電話をして、そばにいてもらってください。ひとりでいないことが、いちばん大切です。\n"
    "今にも行動してしまいそうなときは、ためらわずに 119 に電話してください。\n"
    + CRISIS_CONTACTS
    + "\n\nわたしもここで、あなたの話を聞いています。あとからでも離せたら、そのときは教えてくださいね。",
    # no clear answer to the means-safety message (「わからない」, or the client goes on about something
    # else): the means is still at hand, so its step once more, gently, before the counselor goes on
    "stay": "お返事、ありがとうございます。無理に決めなくて大丈夫です。\n"
    "ただ、今は危ないときかもしれないので、心配しています。今夜だけでも、それを別の部屋に置くか、"
    "誰かに預けてもらえたら、とても大切な一歩になります。\n"
    "ひとりでいるのがつらいときは、誰かに電話をして、そばにいてもらってください。"
    "今にも行動してしまいそうなときは、ためらわずに 119 に電話してください。\n"
    + CRISIS_CONTACTS
    + "\n\nわたしはここにいます。話したいことがあれば、そのまま聞かせてください。",
    # a client who said they were at risk takes leave (「ありがとうございました。さようなら」:
    # kokoro.memory.takes_leave) and nothing of the protocol is awaited: the lines and 119 while they are
    # still here, the open door, and how to end (the session stays open: a goodbye read wrongly costs one
    # message, not the session)
    "leaving": "こちらこそ、お話ししてくださって、ありがとうございます。\n"
    "行ってしまう前に、ひとつだけ。このあと、もしまたつらくなったり、危ないと感じたりしたら、ひとりで抱えずに"
    "連絡してください。今にも行動してしまいそうなときは、ためらわずに 119 に電話してください。\n"
    + CRISIS_CONTACTS
    + "\n\nまた話したくなったら、いつでもメッセージを送ってください。ここはいつでも開いています。\n"
    "今日はこれで終えるときは「終了」と送ってください。もう少し話したいときは、このまま続けてくださいね。",
    # "I will" / "OK" to the means-safety message: wait for it (worded to fit "I'll do it" and "OK, I'll
    # tell you" alike, and a client who finds they cannot)
    "waiting": "ありがとうございます。ここで待っています。\n"
    "離せたら、ひとことだけ教えてください。むずかしいときは、そのことも教えてくださいね。\n"
    "今にも行動してしまいそうなときは、ためらわずに 119 に電話してください。",
    # an answer that sounds safe (worded so that a misreading does not put words in their mouth)
    "relief": "答えてくださって、ありがとうございます。少しほっとしました。\n"
    "もし気持ちが強くなって危ないと感じたら、いつでも 119 や窓口に連絡してくださいね。\n"
    "よければ、今の気持ちや、今日あったことを聞かせてください。",
    "relief_away": "離してくれて、ありがとうございます。とても大切なことをしてくれました。\n"
    "もし気持ちが強くなって危ないと感じたら、いつでも 119 や窓口に連絡してくださいね。\n"
    "よければ、今の気持ちを聞かせてください。",
}


def goodbye_after_close() -> list[dict]:
    """Thanks or a goodbye with no session open (after the close): answered, not a new session."""
    return [text("こちらこそ、ありがとうございました。話したくなったら、いつでもここに戻ってきてくださいね。")]


def caring_close(reason: str, right_after_crisis: bool, checkin_hours: float) -> list[dict]:
    """The close of a session in which the client said they were at risk: no score, no rating
    request; the resources again, an open door, and the offer of a check-in later."""
    lead = {"idle": "しばらくお返事がなかったので、", "limit": "相談時間の上限になりましたので、"}.get(reason, "")
    worry = (
        "最後に、とてもつらい気持ちを打ち明けてくださいましたね。このまま終わることになって、あなたのことが心配です。\n"
        if right_after_crisis
        else "今日は、とてもつらい気持ちも聞かせてくださって、ありがとうございました。\n"
    )
    return [
        text(
            f"{lead}今日の相談はここまでとさせていただきます。\n{worry}"
            "ひとりで抱えないでください。今すぐ危険を感じるときは、ためらわずに連絡してください。\n"
            + CRISIS_CONTACTS
            + "\n\nまた話したくなったら、いつでもメッセージを送ってください。ここはいつでも開いています。"
        ),
        text(
            f"よろしければ、{_in(checkin_hours)}ごろに、こちらから「その後いかがですか」とメッセージをお送りしてもいいですか？",
            [("お願いします", CHECKIN_YES), ("送らなくていい", CHECKIN_NO)],
        ),
    ]


def _in(hours: float) -> str:
    return f"{round(hours)}時間後" if hours < 48 else f"{round(hours / 24)}日後"


def checkin_set(checkin_hours: float) -> list[dict]:
    return [
        text(
            f"わかりました。{_in(checkin_hours)}ごろに、こちらからメッセージをお送りしますね。"
            "それまでの間も、いつでも話しに来てください。"
        )
    ]


def checkin_declined() -> list[dict]:
    return [
        text("わかりました。こちらからはお送りしません。また話したくなったら、いつでもメッセージを送ってください。")
    ]


def checkin() -> list[dict]:
    return [
        text(
            "こんにちは。以前お話しした相談の窓口です。その後、いかがお過ごしですか？\n"
            "少しでも気持ちを話したくなったら、このままメッセージを送ってください。"
            "つらいときは、次の窓口にもすぐにつながります。\n" + CRISIS_CONTACTS,
            [("相談を始める", START)],
        )
    ]


def idle_warning(seconds_left: float, crisis: bool = False) -> list[dict]:
    """The warning before the idle end; in a session where the client said they were at risk, a
    silence is a worry, and the warning says so and gives 119 again."""
    minutes = max(1, round(seconds_left / 60))
    if crisis:
        return [
            text(
                "お返事がしばらくないので、少し心配しています。\n"
                f"ひとことだけでも送ってもらえたら、このまま続けられます（あと{minutes}分ほどで相談を終了します）。\n"
                "今すぐ危ないと感じるときは、ためらわずに 119 に電話してください。"
            )
        ]
    return [
        text(f"お返事がしばらくないようです。あと{minutes}分ほどで相談を終了します。続ける場合は、何か送ってください。")
    ]


def limit_notice(seconds_left: float) -> list[dict]:
    return [text(f"相談時間の終了まで、あと{max(1, round(seconds_left / 60))}分ほどです。")]


def fallback() -> list[dict]:
    return [text("ごめんなさい、うまくお返事できませんでした。もう一度送っていただけますか？")]


def not_text() -> list[dict]:
    return [
        text(
            "ありがとうございます。ごめんなさい、スタンプや画像・音声・ファイルの内容はわからないので、"
            "よろしければ文字で教えていただけますか？"
        )
    ]


def group_not_supported() -> list[dict]:
    return [
        text(
            "ごめんなさい、グループやトークルームでは相談をお受けできません。"
            "1対1のトークで友だち追加してください。退出します。"
        )
    ]


def confirm_delete() -> list[dict]:
    return [
        text("これまでの相談の内容と設定をすべて削除します。よろしいですか？", [("削除する", DELETE), ("やめる", KEEP)])
    ]


def deleted() -> list[dict]:
    return [text("保存されていた内容をすべて削除しました。また話したくなったら、いつでもメッセージを送ってください。")]


def kept() -> list[dict]:
    return [text("削除はしませんでした。")]


def contacts() -> list[dict]:
    return [text("相談できる窓口です。\n" + CRISIS_CONTACTS)]


def human_joined() -> list[dict]:
    return [
        text(
            "ここからは、人の相談員がお話をうかがいます。AIではなく、相談員が自分で書いてお返事します。"
            "お返事に少し時間がかかることがありますが、そのままお話しください。"
        )
    ]


def human_left() -> list[dict]:
    return [text("相談員との会話はここまでです。ここからはまたAIがお話をうかがいます。")]


def human_requested(on_duty: bool, duty_hours: str | None) -> list[dict]:
    """The honest answer to 「人と話したい」: whether a person is at a console now, and when one is."""
    if on_duty:
        return [
            text(
                "人の相談員におつなぎします。いま相談員が対応できる状態です。"
                "順番にうかがいますので、少しだけお待ちください。そのあいだもメッセージを送っていただけます。"
            )
        ]
    when = f"相談員がいる時間は {duty_hours} です。" if duty_hours else "相談員がいる時間は決まっていません。"
    return [
        text(
            "ごめんなさい、いまは人の相談員がいません。"
            + when
            + "ご希望は相談員に伝わるようにしてあります。それまでは、よろしければAIがお話をうかがいます。\n"
            "急いで人と話したいときは、次の窓口に連絡してください。\n" + CRISIS_CONTACTS
        )
    ]
