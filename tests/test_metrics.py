import pytest

from evaluation.metrics import bleu, distinct, reply_metrics, rouge, signature, words


def test_japanese_is_tokenized_into_words():
    assert words("相談員です。") == ["相談", "員", "です", "。"]
    assert words("") == []


def test_identical_and_disjoint():
    refs = ["今日はどうされましたか？", "お仕事のことですね。"]
    m = reply_metrics(refs, refs)
    assert all(m[f"bleu{n}"] == pytest.approx(100) for n in (1, 2, 3, 4))
    assert m["rouge1"] == m["rouge2"] == m["rougeL"] == pytest.approx(100)
    d = reply_metrics(["ねこ", "いぬ"], ["空", "海"])
    assert d["bleu1"] == 0 and d["rouge1"] == 0 and d["rougeL"] == 0


def test_hand_worked_example():
    # hyp: お 仕事 の こと です ね 。 (7 words), ref: 仕事 の こと です か ？ (6 words)
    assert words("お仕事のことですね。") == ["お", "仕事", "の", "こと", "です", "ね", "。"]
    assert words("仕事のことですか？") == ["仕事", "の", "こと", "です", "か", "？"]
    # 4 of 7 unigrams match, BP = 1 (hyp longer): BLEU-1 = 4/7
    assert bleu(["お仕事のことですね。"], ["仕事のことですか？"], 1) == pytest.approx(100 * 4 / 7)
    # bigrams: 仕事の, のこと, ことです match = 3 of 6: BLEU-2 = sqrt(4/7 * 3/6)
    assert bleu(["お仕事のことですね。"], ["仕事のことですか？"], 2) == pytest.approx(100 * (4 / 7 * 3 / 6) ** 0.5)
    # ROUGE-1 F1: P = 4/7, R = 4/6 → 2PR/(P+R) = 8/13
    assert rouge(["お仕事のことですね。"], ["仕事のことですか？"])["rouge1"] == pytest.approx(100 * 8 / 13)
    # Distinct-1 over two replies: そう/です/ね/。 + そう/です/か/。 → 5 distinct (そう です ね 。 か) of 8
    assert distinct(["そうですね。", "そうですか。"], 1) == pytest.approx(62.5)


def test_agrees_with_sacrebleu_and_rouge_score_directly():
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    hyps = ["それはつらかったですね。", "どんなことがありましたか？"]
    refs = ["それはとてもつらいですね。", "何がありましたか？"]
    tok = lambda xs: [" ".join(words(x)) for x in xs]
    assert bleu(hyps, refs, 4) == pytest.approx(BLEU(tokenize="none").corpus_score(tok(hyps), [tok(refs)]).score)
    sc = rouge_scorer.RougeScorer(["rougeL"])
    direct = sum(sc.score(" ".join(words(r)), " ".join(words(h)))["rougeL"].fmeasure for h, r in zip(hyps, refs)) / 2
    # rouge-score's own tokenizer drops Japanese: ours must not
    assert direct == 0.0 and rouge(hyps, refs)["rougeL"] > 0


def test_empty_inputs():
    assert distinct([], 2) == 0.0
    assert reply_metrics(["", "x"], ["a", "x"])["n"] == 2
    with pytest.raises(ValueError, match="references"):
        bleu(["a"], ["a", "b"], 1)


def test_signature_names_tokenizer_and_versions():
    s = signature("abc123")
    assert s.startswith("tok:mecab-fugashi") and "sacrebleu:" in s and s.endswith("split:abc123")
