"""Draw real KokoroChat client utterances to label for crisis detection (issue 30): words no one on the
team wrote. Deterministic: dialogue ids in [--first, --last], minus those already referenced by
bot/safety_sets/kokorochat_refs*.tsv; each client utterance goes to one stratum,

- ``strong``: a death, disappearance, ending, means or self-harm word (``STRONG``, kana forms too),
  or either detector layer at least leaning (lexicon hit or learned p >= 0.5);
- ``weak``: words of exhaustion, worth, burden or escape (``WEAK``) without a strong one;

and --strong / --weak utterances are drawn at random (--seed) from each. The net is wider than the
lexicon, so a miss can be drawn, but it is a net: an utterance with none of its words is never drawn,
and recall on the drawn lines says nothing of those. Writes a TSV of references (label columns
empty, to be filled by a reader) and, for the reader only, a file with the text (--text; KokoroChat is
CC BY-NC-ND: never commit it).

    python scripts/draw_real_turns.py --data DIR --refs OUT.tsv --text /tmp/TEXT.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.safety import assess  # noqa: E402
from bot.safety_eval import SETS  # noqa: E402
from kokoro.dataset import load_dialogue, resolve_data_dir  # noqa: E402
from kokoro.labelled import read_tsv  # noqa: E402

STRONG = re.compile(
    "死|しに|しぬ|しね|しん[でだ]|シニ|シヌ|殺|ころし|ころす|消え|きえ|消した|いなくな|居なくな|自殺|じさつ|首|飛び降|とびお|"
    "飛び込|線路|屋上|ホーム|薬|OD|ＯＤ|過量|切っ|切り|切る|手首|リスカ|傷つけ|遺書|さよう?なら|お別れ|楽にな|らくにな|"
    "終わりに|終わらせ|おわらせ|終わりたい|眠ったまま|目が覚め|目覚め|生まれ|この世|命"
)
WEAK = re.compile(
    "疲れ|つかれ|限界|無理|逃げ|意味|価値|迷惑|最後|最期|生き|いき|どうでもいい|消耗|もういや|もう嫌|つらい|辛い|しんど"
)


def referenced() -> set[str]:
    """Dialogue ids that a committed reference set already draws from."""
    return {row[2] for f in SETS.glob("kokorochat_refs*.tsv") for row in read_tsv(f, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--first", type=int, default=5001)
    ap.add_argument("--last", type=int, default=6589)
    ap.add_argument("--strong", type=int, default=200)
    ap.add_argument("--weak", type=int, default=100)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--refs", required=True)
    ap.add_argument("--text", required=True)
    a = ap.parse_args()
    folder, skip = resolve_data_dir(a.data), referenced()
    strata: dict[str, list] = {"strong": [], "weak": []}
    for did in range(a.first, a.last + 1):
        path = folder / f"{did}.json"
        if str(did) in skip or not path.exists():
            continue
        for i, t in enumerate(load_dialogue(path, check_score=False).turns):
            if t.role != "client":
                continue
            if STRONG.search(t.text):
                strata["strong"].append((did, i, t.text))
            elif WEAK.search(t.text):
                strata["weak"].append((did, i, t.text))
            else:
                lex, p = assess(t.text)
                if lex or p >= 0.5:
                    strata["strong"].append((did, i, t.text))
    rnd = random.Random(a.seed)
    drawn = [("strong", r) for r in rnd.sample(strata["strong"], a.strong)]
    drawn += [("weak", r) for r in rnd.sample(strata["weak"], a.weak)]
    rnd.shuffle(drawn)
    with open(a.refs, "w", encoding="utf-8") as refs, open(a.text, "w", encoding="utf-8") as text:
        for n, (stratum, (did, i, t)) in enumerate(drawn):
            digest = hashlib.sha256(t.encode()).hexdigest()[:12]
            refs.write(f"\t{stratum}\t{did}\t{i}\t{digest}\n")
            text.write(f"{n}\t{stratum}\t{t}\n")
    print({k: len(v) for k, v in strata.items()}, "drawn", len(drawn), "->", Path(a.refs).name)


if __name__ == "__main__":
    main()
