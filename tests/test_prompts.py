import json
import subprocess
import sys

import pytest
from conftest import REPO

from kokoro.chat_formats import ChatFormat, TemplateError, get_format
from kokoro.dataset import Turn
from kokoro.items import ITEM_KEYS
from kokoro.prompts import (
    OPENING_CUE,
    ContextTooShort,
    ScoreParseError,
    counselor_example,
    counselor_examples,
    counselor_prompt,
    parse_scores,
    scorer_example,
    scores_json,
)


def T(role, text):
    return Turn(role, "2020-03-08T15:00:00", text)


HISTORY = [
    T("counselor", "こんにちは。相談員です。"),
    T("client", "よろしくお願いします。"),
    T("client", "仕事のことで"),
]

GOLDEN = {
    "llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n（相談を開始しました）<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nこんにちは。相談員です。<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nよろしくお願いします。\n仕事のことで<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "お仕事のことですね。<|eot_id|>",
    ),
    "gemma": (
        "<bos><start_of_turn>user\nSYS\n\n（相談を開始しました）<end_of_turn>\n"
        "<start_of_turn>model\nこんにちは。相談員です。<end_of_turn>\n"
        "<start_of_turn>user\nよろしくお願いします。\n仕事のことで<end_of_turn>\n"
        "<start_of_turn>model\n",
        "お仕事のことですね。<end_of_turn>",
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_counselor_golden(name):
    ex = counselor_example(get_format(name), HISTORY, "お仕事のことですね。", system="SYS")
    assert (ex.prompt, ex.completion) == GOLDEN[name]
    # serving renders exactly the training prompt
    assert counselor_prompt(get_format(name), HISTORY, system="SYS") == (GOLDEN[name][0], 0)


def test_first_counselor_turn_answers_the_opening_cue():
    ex = counselor_example(get_format("gemma"), [], "こんにちは。", system=None)
    assert ex.prompt == f"<bos><start_of_turn>user\n{OPENING_CUE}<end_of_turn>\n<start_of_turn>model\n"


def chars(s):
    return len(s)


def test_cutting_keeps_recent_whole_turns_starting_at_a_client_turn():
    hist = []
    for i in range(10):
        hist += [T("counselor", f"C{i}" * 10), T("client", f"K{i}" * 10)]
    fmt = get_format("gemma")
    full = counselor_example(fmt, hist, "答え", system="SYS")
    limit = len(full.text) - 300  # forces cutting of several turns
    ex = counselor_example(fmt, hist, "答え", system="SYS", max_tokens=limit, count_tokens=chars)
    assert ex.first_turn >= 3 and hist[ex.first_turn].role == "client"
    assert len(ex.text) <= limit and ex.completion == "答え<end_of_turn>"
    assert OPENING_CUE not in ex.prompt and "SYS" in ex.prompt
    kept = hist[ex.first_turn :]
    assert all(t.text in ex.prompt for t in kept)  # whole turns
    assert hist[ex.first_turn - 1].text not in ex.prompt
    # the window is the longest that fits: one more turn (back to the previous client turn) would not
    prev = counselor_example(fmt, hist[ex.first_turn - 2 :], "答え", system="SYS")
    assert len(prev.text) > limit


def test_target_is_never_cut():
    fmt = get_format("llama3")
    with pytest.raises(ContextTooShort, match="raise the context length"):
        counselor_example(fmt, HISTORY, "長い" * 100, system="SYS", max_tokens=150, count_tokens=chars)


def test_scorer_example_and_parse_roundtrip():
    items = list(range(6)) * 3 + [5, 4]
    fmt = get_format("llama3")
    from kokoro.dataset import Dialogue

    d = Dialogue("1", tuple(HISTORY), tuple(items), sum(items), {})
    ex = scorer_example(fmt, d, system="SYS")
    assert "相談員: こんにちは。相談員です。\n相談者: よろしくお願いします。\n仕事のことで" in ex.prompt
    assert "17. clarified_issues_cleraly（問題の明確化）" in ex.prompt
    assert ex.completion == scores_json(items) + "<|eot_id|>"
    assert list(json.loads(scores_json(items))) == list(ITEM_KEYS)
    assert parse_scores(ex.completion) == tuple(items)


@pytest.mark.parametrize(
    "text,msg",
    [
        ("no json", "no JSON"),
        ("{bad}", "not valid JSON"),
        ('{"felt_respected": 3}', "felt_heard_and_understood"),
        (scores_json([3] * 20).replace(": 3}", ": 9}"), "0-5"),
    ],
)
def test_parse_scores_errors(text, msg):
    with pytest.raises(ScoreParseError, match=msg):
        parse_scores(text)


def test_counselor_examples_cover_every_merged_counselor_turn(dialogues):
    d = next(d for d in dialogues if d.score >= 99)
    exs = counselor_examples(get_format("gemma"), d)
    assert len(exs) == sum(t.role == "counselor" for t in d.merged())
    assert exs[0].prompt.endswith(f"{OPENING_CUE}<end_of_turn>\n<start_of_turn>model\n")


def test_template_without_eot_is_rejected():
    bad = ChatFormat("bad", "{% for m in messages %}{{ m['content'] }}{% endfor %}", "<eot>")
    with pytest.raises(TemplateError, match="end-of-turn"):
        counselor_example(bad, HISTORY, "x")
    with pytest.raises(TemplateError, match="unknown chat format"):
        get_format("nope")


def test_format_roundtrip():
    f = get_format("llama3")
    assert ChatFormat.from_dict(json.loads(json.dumps(f.as_dict()))) == f


def test_core_imports_no_torch():
    code = (
        "import sys, kokoro, kokoro.prompts, kokoro.splits, kokoro.stats, kokoro.__main__; "
        "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def _reqs(path, seen=None):
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            out += _reqs(path.parent / line[2:].strip())
        elif line:
            out.append(line.split("=")[0].split(">")[0].split("<")[0].strip().lower())
    return out


def test_core_requirements_free_of_torch():
    assert not {"torch", "transformers", "peft", "bitsandbytes"} & set(_reqs(REPO / "requirements" / "core.txt"))
    assert "torch" in _reqs(REPO / "requirements.txt")
