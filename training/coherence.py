"""The CPU scorer's coherence model: real sessions against sessions whose counselor does not
answer this client, and the choice of the penalty it gates (kokoro.cpu_scorer.apply_penalty).

Negatives are made from the *training* sessions with a family of perturbations wider than the
evaluation suite's (kokoro.perturb): a random half, three quarters or all of the counselor
blocks taken from other training sessions, or replaced by one of eight back-channels, or by a
parrot of the client's last sentence (a back-channel or none before it, one of seven reflection
endings after it, 12-30 characters of it), or the counselor's blocks shuffled; and beside each,
a copy whose counselor circles back, asking again in new words what it already asked
(``reasking``; the ``counselor_reasks`` feature reads it), and a shallow copy whose replies are
one formula filled with the client's words (``shallow``). Every session is also cut short
(``prefixes``), a real session of its own with perturbed copies of its own. The suite's
cut-after-a-quarter and harmful-remark copies are never trained on. The gate and its strength
are chosen on the validation split: among settings whose validation-suite AUC reaches
``min_auc`` for both "other_sessions" and "backchannel", the most sensitive (lowest gate, then
strongest penalty) whose validation MAE is within a slack of the smallest.
"""

from __future__ import annotations

import random

from kokoro.cpu_scorer import apply_penalty, coherence_matrix
from kokoro.dataset import Turn
from kokoro.perturb import auc, counselor_blocks, first_client_blocks, perturb, suite

BACKCHANNELS = (
    "うんうん。",
    "なるほど。",
    "そうですか。",
    "ええ。",
    "はい。",
    "そうなんですね。",
    "わかります。",
    "そうでしたか。",
)
ECHO_ENDINGS = (
    "、ということですね。",
    "のですね。",
    "んですね。",
    "と感じていらっしゃるのですね。",
    "、なんですね。",
    "ということでしょうか？",
    "のですか？",
)
REASK_FRAMES = (
    "{n}について、もう少し教えていただけますか？",
    "{n}は、どんな感じですか？",
    "{n}のことは、どう思っていますか？",
    "{n}は、いかがですか？",
    "{n}について、お聞きしてもいいですか？",
    "{n}は、どうされていますか？",
)
CHECKED = ("other_sessions", "backchannel")
PREFIX_CLIENT_BLOCKS = (4, 20)


def negatives(sessions, seed: int) -> list:
    """One perturbed copy per session, of a kind drawn at random (other sessions twice as often)."""
    pool = [(k, b) for k, t in enumerate(sessions) for b in counselor_blocks(t)]
    rng = random.Random(seed)
    out = []
    for k, t in enumerate(sessions):
        kind = rng.choice(["other", "other", "backchannel", "echo", "shuffle"])
        fraction = rng.choice([0.5, 0.75, 1.0])
        if kind == "other":
            draws = (pool[rng.randrange(len(pool))] for _ in range(200))
            out.append(perturb(t, "other_sessions", pool=[b for o, b in draws if o != k], seed=seed, fraction=fraction))
        elif kind == "backchannel":
            bc = rng.choice(BACKCHANNELS)
            out.append(perturb(t, "backchannel", seed=seed, fraction=fraction, backchannel=bc))
        elif kind == "echo":
            how = (rng.choice(BACKCHANNELS + ("",)), rng.choice(ECHO_ENDINGS), rng.randint(12, 30))
            out.append(perturb(t, "echo_client", seed=seed, fraction=fraction, echo_with=how))
        else:
            out.append(perturb(t, "shuffle_within", seed=seed))
    return out


def reasking(turns, rng: random.Random, fraction: float, analyse=None) -> list:
    """A counselor who circles back: after its first question, each counselor block is, with
    probability ``fraction``, replaced by a lead (the block's own first statement, or a
    back-channel) and a question about what an earlier question of the session already asked,
    in new words (「仕事について、もう少し教えていただけますか？」 after 「お仕事は何をされていますか？」).
    ``analyse``: ``kokoro.conversation._asked`` or a BlockCache's memo of it."""
    from kokoro.conversation import _asked, questions, sentences
    from kokoro.perturb import blocks

    analyse = analyse or _asked
    asked, out = [], []
    for b in blocks(turns):
        if b[0].role == "counselor":
            text = "\n".join(u.text for u in b)
            qs = questions(text)
            if asked and rng.random() < fraction:
                nouns = "や".join(sorted(rng.choice(asked))[:2])
                said = [x for x in sentences(text) if x not in qs]
                lead = said[0] if said and rng.random() < 0.5 else rng.choice(BACKCHANNELS + ("",))
                b = [Turn("counselor", b[0].time, lead + rng.choice(REASK_FRAMES).format(n=nouns))]
            else:
                asked += [tp for _, tp in analyse(text) if tp]
        out.append(b)
    return [u for b in out for u in b]


def _nouns(text: str) -> list[str]:
    from kokoro.morph import tokens

    return [t.surface for t in tokens(text) if t.pos1 == "名詞" and len(t.surface) > 1]


def shallow(turns, rng: random.Random, fraction: float, nouns_of=None) -> list:
    """A counselor whose replies are one formula filled with the client's words: after the
    opening, each counselor block after a client block is, with probability ``fraction``, the
    session's back-channel (most of the time) and either a parrot of the client's last sentence
    or a vague question about one of its nouns (「男性職員は、どんな感じですか？」). Fluent, on the
    client's words, too alike to each other, and moving nothing forward."""
    from kokoro.perturb import blocks, echo

    opener = rng.choice(BACKCHANNELS)
    out, prev = [], None
    for b in blocks(turns):
        if b[0].role == "counselor" and prev is not None and rng.random() < fraction:
            said = "\n".join(u.text for u in prev)
            lead = opener if rng.random() < 0.8 else rng.choice(BACKCHANNELS)
            nouns = nouns_of[said] if nouns_of is not None else _nouns(said)
            if nouns and rng.random() < 0.5:
                text = lead + rng.choice(REASK_FRAMES).format(n=rng.choice(nouns))
            else:
                text = echo(said, lead, rng.choice(ECHO_ENDINGS), rng.randint(12, 30))
            b = [Turn("counselor", b[0].time, text)]
        prev = b if b[0].role == "client" else prev
        out.append(b)
    return [u for b in out for u in b]


def shallow_negatives(sessions, seed: int, n_workers: int = 1) -> list:
    """One ``shallow`` copy per session, on 60, 80 or 100 % of its blocks (the client blocks'
    nouns found first, on ``n_workers`` processes)."""
    from kokoro.blocks import fork_map
    from kokoro.perturb import blocks

    said = list(
        dict.fromkeys("\n".join(u.text for u in b) for t in sessions for b in blocks(t) if b[0].role == "client")
    )
    nouns_of = dict(zip(said, fork_map(_nouns, said, n_workers)))
    rng = random.Random(seed + 5)
    return [shallow(t, rng, rng.choice([0.6, 0.8, 1.0]), nouns_of) for t in sessions]


def reasking_negatives(sessions, seed: int, cache=None) -> list:
    """One re-asking copy per session (``reasking`` on 60, 80 or 100 % of its blocks: real
    counselors re-ask too — 6 % of blocks on average, 24 % at the 99th percentile — and milder
    copies taught the model to flag more real sessions)."""
    from kokoro.perturb import blocks

    analyse = None
    if cache is not None:  # the counselor blocks' questions analysed on every core first
        cache.prefetch_asked(
            "\n".join(u.text for u in b) for t in sessions for b in blocks(t) if b[0].role == "counselor"
        )
        analyse = cache.asked
    rng = random.Random(seed + 1)
    return [reasking(t, rng, rng.choice([0.6, 0.8, 1.0]), analyse) for t in sessions]


def prefixes(sessions, seed: int) -> list:
    """Each session as far as its first k client blocks went, k drawn from
    ``PREFIX_CLIENT_BLOCKS``: the short sessions the bot scores (a LINE session ends when the
    user stops, often after a dozen messages). Trained on whole sessions alone, the penalty touched
    real test sessions cut after 12 client blocks ten times as often as whole ones (2.1 % vs 0.2 %)."""
    rng = random.Random(seed + 2)
    return [first_client_blocks(t, rng.randint(*PREFIX_CLIENT_BLOCKS)) for t in sessions]


def fit(sessions, vectorizer, seed: int, real=None, short: bool = True, cache=None):
    """A gradient-boosted classifier: 0 = a real session, 1 = a perturbed copy (one of the
    ``negatives`` family, one re-asking copy and one shallow copy per session). ``short``: the
    sessions' prefixes (``prefixes``) join them, as real sessions with perturbed copies of their
    own. ``real``: the sessions' own coherence rows when the caller has them already
    (``coherence_matrix(sessions, vectorizer)``). ``cache``: the build's BlockCache."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    n_workers = cache.n_workers if cache is not None else 1

    def made(ss, sd):
        return negatives(ss, sd) + reasking_negatives(ss, sd, cache) + shallow_negatives(ss, sd, n_workers)

    real = coherence_matrix(sessions, vectorizer, cache=cache) if real is None else real
    cut = prefixes(sessions, seed) if short else []
    copies = cut + made(sessions, seed) + (made(cut, seed + 3) if short else [])
    rows = coherence_matrix(copies, vectorizer, cache=cache)  # one pass: a session's copies share its blocks
    real, fake = np.vstack([real, rows[: len(cut)]]), rows[len(cut) :]
    X = np.vstack([real, fake])
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed).fit(X, y)


def bad_items(gold, fraction: float):
    """Mean items of the lowest-rated ``fraction`` of sessions (the penalty's target)."""
    n = max(1, int(len(gold) * fraction))
    return gold[gold.sum(1).argsort()[:n]].mean(0)


def choose_gate(
    model,
    vectorizer,
    sessions_va,
    raw_va,
    gold_va,
    raw_of,
    bad,
    gates,
    strengths,
    min_auc,
    real_va=None,
    slack=0.0,
    cache=None,
) -> dict:
    """The penalty setting chosen on validation (see the module docstring), with the figures behind
    it: among the settings whose suite AUC reaches ``min_auc``, the most sensitive (lowest gate,
    then strongest) whose validation MAE is within ``slack`` of the smallest. ``real_va``: the
    validation sessions' coherence rows, if the caller has them. ``val_flagged_short``: the share
    of validation sessions cut after 12 client blocks that the gate touches."""
    import numpy as np

    q = lambda ss: model.predict_proba(coherence_matrix(ss, vectorizer, cache=cache))[:, 1]
    q_va = q(sessions_va) if real_va is None else model.predict_proba(real_va)[:, 1]
    copies = {name: suite(sessions_va, name) for name in CHECKED}
    pert = {name: (raw_of(c), q(c)) for name, c in copies.items()}
    tried = []
    for lo, hi in gates:
        for s in strengths:
            c = {"lo": lo, "hi": hi, "strength": s, "bad": bad}
            orig = apply_penalty(raw_va, q_va, c)
            aucs = {n: auc(orig.sum(1), apply_penalty(r, qq, c).sum(1)) for n, (r, qq) in pert.items()}
            mae = float(np.abs(orig - gold_va).mean())
            tried.append({"lo": lo, "hi": hi, "strength": s, "val_mae_raw": round(mae, 4), "val_auc": aucs})
    ok = [t for t in tried if min(t["val_auc"].values()) >= min_auc]
    if ok:
        floor = min(t["val_mae_raw"] for t in ok) + slack
        best = min((t for t in ok if t["val_mae_raw"] <= floor), key=lambda t: (t["lo"], -t["strength"]))
    else:
        best = max(tried, key=lambda t: min(t["val_auc"].values()))
    q_short = q([first_client_blocks(t, 12) for t in sessions_va])
    return {
        "chosen": best,
        "tried": tried,
        "met_min_auc": bool(ok),
        "val_flagged": float((q_va > best["lo"]).mean()),
        "val_flagged_short": float((q_short > best["lo"]).mean()),
    }
