"""`humaneval prepare`: the comparison set of the paper's human evaluation.

10 test dialogues, and in each 10 counselor turns whose histories vary in length (one drawn from
each tenth of the dialogue's counselor turns, so short and long histories are both there), all
seeded. Each source gives the next counselor turn for every history; every pair of sources is
shown for every history, the two responses in a seeded random order.

A source is ``NAME=SPEC``: ``demo`` (the embedded default counselor), ``retrieval`` (Table 4's
retrieval baseline: the reply that followed the most similar training context), ``PATH.gguf`` or
``PATH.gguf+LORA.gguf``, ``endpoint:MODEL`` (behind ``--endpoint``), or ``replies:FILE`` (the
replies.jsonl of an ``evaluation responses`` run over the whole test set). ``Human`` (the
dialogue's own counselor) is always a source.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import secrets
from pathlib import Path

from kokoro.dataset import load
from kokoro.splits import counselor_split, ids_hash
from kokoro.versions import library_versions

HUMAN = "Human"
FORMAT = 1


class PrepareError(ValueError):
    """A source or pair the comparison set cannot be made with; the message says what to change."""


def parse_source(arg: str) -> tuple[str, str]:
    name, sep, spec = arg.partition("=")
    if not sep or not name or not spec:
        raise PrepareError(
            f"--source {arg!r}: write NAME=SPEC (demo, X.gguf[+LORA.gguf], endpoint:MODEL, replies:FILE)"
        )
    if name == HUMAN:
        raise PrepareError(f"--source {arg!r}: {HUMAN} is the dialogue's own counselor, always included")
    return name, spec


def sample_histories(dialogues, n_dialogues: int = 10, n_histories: int = 10, seed: int = 0):
    """[(dialogue, merged index of a counselor turn)], sorted by dialogue then position: the paper's
    sample (10 test dialogues, 10 histories each), stratified by history length."""
    rng = random.Random(seed)
    by = {d.id: d for d in dialogues}
    test = [by[x] for x in counselor_split(dialogues, "full").test]
    if n_dialogues > len(test):
        raise PrepareError(f"--dialogues {n_dialogues}: the test split has {len(test)} dialogues")
    jobs = []
    for d in rng.sample(test, n_dialogues):
        merged = d.merged()
        idx = [i for i, t in enumerate(merged) if t.role == "counselor" and any(x.role == "client" for x in merged[:i])]
        k = min(n_histories, len(idx))
        strata = [idx[len(idx) * s // k : len(idx) * (s + 1) // k] for s in range(k)]
        jobs += [(d, rng.choice(s)) for s in strata]
    return jobs


def replies_from_file(path: str, jobs) -> list[str]:
    got = {}
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            got[(r["dialogue"], r["turn"])] = r["model"]
    except (OSError, ValueError, KeyError) as e:
        raise PrepareError(f"replies:{path}: not a replies.jsonl of `evaluation responses` ({e})") from None
    missing = [(d.id, i) for d, i in jobs if (d.id, i) not in got]
    if missing:
        raise PrepareError(
            f"replies:{path} lacks {len(missing)} of the {len(jobs)} sampled turns (first: dialogue {missing[0][0]} "
            f"turn {missing[0][1]}); run `evaluation responses` without --limit"
        )
    return [got[(d.id, i)] for d, i in jobs]


def generate_source(spec: str, jobs, dialogues, endpoint_for=None, threads=0, chat_format=None, window=(128, 0)):
    """(replies, identity) of one source; ``window``: (max reply tokens, history turns, 0 = all)."""
    from evaluation.responses import generate, generate_endpoint, retrieval_replies

    if spec == "retrieval":
        by = {d.id: d for d in dialogues}
        train = [by[x] for x in counselor_split(dialogues, "full").train]
        return retrieval_replies(jobs, train), {"source": "retrieval baseline (char 1-3-gram TF-IDF, training split)"}
    if spec.startswith("replies:"):
        return replies_from_file(spec[8:], jobs), {"replies": spec[8:]}
    if spec.startswith("endpoint:"):
        if endpoint_for is None:
            raise PrepareError(f"source {spec}: give the server with --endpoint URL")
        ep = endpoint_for(spec[9:])
        hyps, settings, _ = generate_endpoint(ep, jobs, *window, chat_format=chat_format)
        return hyps, settings
    if spec == "demo":
        from bot.config import DEMO, Settings

        s = Settings(counselor_gguf=DEMO)
        s.resolve_demo()
        hyps, settings, _ = generate(
            jobs,
            s.counselor_gguf,
            s.counselor_lora,
            max_tokens=window[0],
            chat_format=s.chat_format,
            history_turns=s.history_turns or window[1],
            system=s.system_prompt,
            threads=threads,
            progress=False,
        )
        return hyps, {**settings, "source": "demo"}
    model, _, lora = spec.partition("+")
    if not model.endswith(".gguf") or not Path(model).is_file():
        raise PrepareError(
            f"source {spec}: not demo, retrieval, endpoint:MODEL, replies:FILE or an existing .gguf file"
        )
    hyps, settings, _ = generate(
        jobs,
        model,
        lora or None,
        max_tokens=window[0],
        history_turns=window[1],
        chat_format=chat_format,
        threads=threads,
        progress=False,
    )
    return hyps, settings


def prepare(
    sources: list[tuple[str, str]],
    out: Path,
    data=None,
    pairs: list[tuple[str, str]] | None = None,
    n_dialogues: int = 10,
    n_histories: int = 10,
    seed: int = 0,
    raters: int = 5,
    endpoint_for=None,
    threads: int = 0,
    chat_format: str | None = None,
    max_tokens: int = 128,
    history_turns: int = 0,
) -> dict:
    names = [HUMAN] + [n for n, _ in sources]
    if len(set(names)) != len(names):
        raise PrepareError(f"source names must differ: {names}")
    pairs = pairs or list(itertools.combinations([n for n, _ in sources] + [HUMAN], 2))
    for a, b in pairs:
        if a not in names or b not in names or a == b:
            raise PrepareError(f"--pair {a}:{b}: both must be sources ({', '.join(names)}) and differ")
    if (out / "comparison.json").exists():
        raise PrepareError(f"{out}/comparison.json exists: answers may refer to it; choose another --out")
    dialogues = load(data)
    jobs = sample_histories(dialogues, n_dialogues, n_histories, seed)
    replies = {HUMAN: [d.merged()[i].text for d, i in jobs]}
    identities = {HUMAN: {"source": "the test dialogue's counselor"}}
    for name, spec in sources:
        replies[name], identities[name] = generate_source(
            spec, jobs, dialogues, endpoint_for, threads, chat_format, (max_tokens, history_turns)
        )
    histories = [
        {
            "dialogue": d.id,
            "turn": i,
            "history": [{"role": t.role, "text": t.text} for t in d.merged()[:i]],
            "responses": {n: replies[n][k] for n in names},
        }
        for k, (d, i) in enumerate(jobs)
    ]
    rng = random.Random(seed + 1)
    items = []
    for p, (a, b) in enumerate(pairs):
        for k in range(len(histories)):
            shown = [a, b] if rng.random() < 0.5 else [b, a]
            items.append({"id": f"{p}-{k}", "history": k, "pair": [a, b], "shown": shown})
    test_ids = counselor_split(dialogues, "full").test
    settings = {
        "sources": identities,
        "pairs": [list(x) for x in pairs],
        "dialogues": n_dialogues,
        "histories_per_dialogue": n_histories,
        "seed": seed,
        "max_tokens": max_tokens,
        "history_turns": history_turns,
    }
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()
    comparison = {
        "format": FORMAT,
        "signature": f"split:{ids_hash(test_ids)}|seed:{seed}|set:{hashlib.sha256(blob).hexdigest()[:12]}",
        "versions": library_versions(),
        "settings": settings,
        "histories": histories,
        "items": items,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(comparison, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    codes = [f"R{r + 1}-{secrets.token_hex(3)}" for r in range(raters)]
    (out / "raters.txt").write_text("".join(c + "\n" for c in codes), encoding="utf-8")
    return {"items": len(items), "histories": len(histories), "pairs": settings["pairs"], "raters": codes}
