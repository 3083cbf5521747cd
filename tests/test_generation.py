"""kokoro.generation: the one rule for the next counselor turn (window, tokens, session memory)."""

from kokoro.chat_formats import get_format
from kokoro.dataset import Turn
from kokoro.generation import WINDOW_SLACK, next_turn, prompt_tokens, window

FMT = get_format("gemma")
count = len  # one token per character: the rule does not depend on the tokenizer


def history(n: int, chars: int = 40) -> list[Turn]:
    roles = ("client", "counselor")
    return [Turn(roles[i % 2], f"2026-01-01 00:{i:02d}", f"{i:02d}" + "あ" * (chars - 2)) for i in range(n)]


def test_a_session_that_fits_keeps_its_whole_history():
    prompt, start = window(FMT, history(6), budget=2000, start=0, count_tokens=count)
    assert start == 0 and "00あ" in prompt and count(prompt) <= 2000


def test_a_moving_window_is_cut_to_the_slack_and_then_stays_put():
    budget = 1200
    h = history(60)
    prompt, start = window(FMT, h, budget=budget, start=0, count_tokens=count)
    assert start > 0 and count(prompt) <= int(budget * WINDOW_SLACK)
    later, again = window(FMT, h + history(62)[60:], budget=budget, start=start, count_tokens=count)
    assert again == start and later.startswith(prompt[:100])  # the cached prefix is reused


def test_one_message_longer_than_any_window_is_answered_from_its_end():
    huge = [Turn("client", "2026-01-01 00:00", "い" * 5000 + "最後の言葉")]
    prompt, start = window(FMT, huge, budget=800, start=0, count_tokens=count)
    assert "最後の言葉" in prompt and count(prompt) <= 800 and start == 0


def test_next_turn_avoids_what_was_said_and_asked_and_cuts_a_reask():
    seen = []

    def generate(avoid):
        seen.append(list(avoid))
        return "そうなんですね。年齢を教えていただけますか？"

    turns = [("counselor", "こんにちは。"), ("client", "30代の女性です。仕事のことで悩んでいます。")]
    text, applied = next_turn(generate, turns)
    assert len(seen) == 1 and "こんにちは。" in seen[0] and len(seen[0]) > 1  # the answered questions too
    assert "年齢" not in text and applied


def test_an_empty_draft_stays_empty_for_the_caller_to_replace():
    assert next_turn(lambda avoid: "", [("client", "はい")]) == ("", [])


def test_a_rendered_prompt_is_tokenized_without_a_second_bos():
    class Llm:
        def tokenize(self, data, add_bos=True, special=False):
            self.args = (data, add_bos, special)
            return [1, 2]

    llm = Llm()
    assert prompt_tokens(llm, "<bos>あ") == [1, 2] and llm.args == ("<bos>あ".encode(), False, True)
