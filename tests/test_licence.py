"""KokoroChat is CC BY-NC-ND: no committed file may quote it (docs samples, labelled sets, tests).

A quote is a run of at least ``QUOTE_CHARS`` characters (no spaces, no ASCII punctuation) that
appears verbatim in exactly one KokoroChat dialogue: a stock phrase that many counselors write
(「お話ししてくださってありがとうございます。」) is not a quote of anyone. Phrases written here that
happen to equal one counselor's words are listed below, each a conscious decision.
"""

import re
import subprocess

import pytest
from conftest import REPO

QUOTE_CHARS = 20
RUN = re.compile(r"[^\s\x00-\x2f:-@\[-`{-~]{%d,}" % QUOTE_CHARS)
WRITTEN_HERE = {
    "はじめに、差し支えなければ年齢と性別を教えていただけますか？",  # bot/messages.py, the opening
    "お子さんのことを大切に思っていらっしゃるのですね。",  # remarks_train.tsv, an ok look-alike
}


def quotes(text: str, dialogues_text: list[str], corpus: str) -> list[str]:
    """The runs of ``text`` that quote exactly one dialogue."""
    found = []
    for run in sorted(set(RUN.findall(text))):
        if run in corpus and run not in WRITTEN_HERE and sum(run in d for d in dialogues_text) == 1:
            found.append(run)
    return found


@pytest.fixture(scope="module")
def corpus(dialogues):
    texts = ["\n".join(t.text for t in d.turns) for d in dialogues]
    return texts, "\x00".join(texts)


def test_a_quoted_dialogue_is_found(corpus, dialogues):
    texts, joined = corpus
    turn = max((t.text for t in dialogues[0].turns), key=len)
    quote = RUN.search(turn).group(0)
    doc = f"| client's last turn | {quote} |\n| はい | ありがとうございました |"
    assert quotes(doc, texts, joined) == [quote]
    assert quotes("お話ししてくださってありがとうございます。よく頑張ってこられましたね。", texts, joined) == []


def test_no_committed_file_quotes_kokorochat(corpus):
    texts, joined = corpus
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    leaks = {}
    for name in files:
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files (images, models) hold no quoted text
        found = quotes(text, texts, joined)
        if found:
            leaks[name] = found
    assert not leaks, f"KokoroChat text in committed files (CC BY-NC-ND: remove it): {leaks}"
