"""Reply metrics as in the paper's Table 4, with a stated Japanese tokenizer.

Text is tokenized with MeCab (fugashi + unidic-lite) into words; then
* BLEU-n: sacrebleu's corpus BLEU with max n-gram order n (cumulative, uniform weights, brevity
  penalty), on the pre-tokenized text (``tokenize='none'``);
* ROUGE-1/2/L: rouge-score F1 per pair with the same word tokenizer (its default tokenizer
  drops every non-ASCII character, i.e. all Japanese), averaged over pairs;
* Distinct-n: distinct n-grams / all n-grams over all generated replies.
All values are percentages. ``signature()`` states the choices and versions, like sacrebleu's.
"""

from __future__ import annotations

import importlib.metadata as md
from functools import lru_cache
from typing import Sequence


@lru_cache(maxsize=1)
def _tagger():
    import fugashi
    import unidic_lite

    return fugashi.Tagger(f"-d {unidic_lite.DICDIR}")


def words(text: str) -> list[str]:
    return [w.surface for w in _tagger()(text)] if text.strip() else []


class _Tok:
    def tokenize(self, text: str) -> list[str]:
        return words(text)


def bleu(hyps: Sequence[str], refs: Sequence[str], n: int) -> float:
    from sacrebleu.metrics import BLEU

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} replies for {len(refs)} references")
    h = [" ".join(words(x)) for x in hyps]
    r = [" ".join(words(x)) for x in refs]
    return BLEU(tokenize="none", max_ngram_order=n).corpus_score(h, [r]).score


def rouge(hyps: Sequence[str], refs: Sequence[str]) -> dict:
    from rouge_score import rouge_scorer

    sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tok())
    tot = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hyps, refs):
        s = sc.score(r, h)
        for k in tot:
            tot[k] += s[k].fmeasure
    n = max(len(hyps), 1)
    return {k: 100 * v / n for k, v in tot.items()}


def distinct(hyps: Sequence[str], n: int) -> float:
    grams = [tuple(w[i : i + n]) for w in (words(h) for h in hyps) for i in range(len(w) - n + 1)]
    return 100 * len(set(grams)) / len(grams) if grams else 0.0


def reply_metrics(hyps: Sequence[str], refs: Sequence[str]) -> dict:
    out = {f"bleu{n}": bleu(hyps, refs, n) for n in (1, 2, 3, 4)}
    r = rouge(hyps, refs)
    out.update({"rouge1": r["rouge1"], "rouge2": r["rouge2"], "rougeL": r["rougeL"]})
    out.update({"dist1": distinct(hyps, 1), "dist2": distinct(hyps, 2), "n": len(hyps)})
    return out


def signature(split_hash: str = "") -> str:
    v = lambda p: md.version(p)
    parts = [
        f"tok:mecab-fugashi{v('fugashi')}-unidic-lite{v('unidic-lite')}",
        f"sacrebleu:{v('sacrebleu')}",
        "bleu:corpus-cumulative",
        f"rouge-score:{v('rouge-score')}",
        "rouge:f1-mean",
        "distinct:corpus",
    ]
    if split_hash:
        parts.append(f"split:{split_hash}")
    return "|".join(parts)
