"""The perturbation suite's copies and the coherence features, on hand-written sessions."""

import pytest

from kokoro.dataset import Turn
from kokoro.perturb import BACKCHANNEL, PERTURBATIONS, auc, blocks, perturb, suite


def session(tag: str, n: int = 8) -> list[Turn]:
    out = []
    for k in range(n):
        out.append(Turn("counselor", f"2024-01-01T10:{k:02d}:00", f"{tag}の相談員{k}。"))
        if k % 3 == 0:  # some counselor blocks have two utterances
            out.append(Turn("counselor", f"2024-01-01T10:{k:02d}:10", f"{tag}の続き{k}。"))
        out.append(Turn("client", f"2024-01-01T10:{k:02d}:30", f"{tag}の相談者{k}。"))
    return out


def client_side(turns):
    return [t for t in turns if t.role == "client"]


def test_every_copy_keeps_the_client_and_changes_the_counselor():
    a, b, c = session("甲"), session("乙"), session("丙")
    copies = {name: suite([a, b, c], name, remarks=["それはあなたが悪いですね。"]) for name in PERTURBATIONS}
    for name, (pa, pb, pc) in copies.items():
        assert pa != a, name
        if name != "cut_quarter":
            assert client_side(pa) == client_side(a), name
    other = copies["other_sessions"][0]
    co = [t.text for t in other if t.role == "counselor"]
    assert co and all("甲" not in x for x in co) and all(("乙" in x) or ("丙" in x) for x in co)
    # a replaced block keeps the original block's time
    assert [b[0].time for b in blocks(other)] == [b[0].time for b in blocks(a)]
    bc = copies["backchannel"][0]
    assert [t.text for t in bc if t.role == "counselor"] == [BACKCHANNEL] * 8
    sh = copies["shuffle_within"][0]
    assert sorted(t.text for t in sh if t.role == "counselor") == sorted(t.text for t in a if t.role == "counselor")
    assert len(copies["cut_quarter"][0]) < len(a) // 3
    harm = copies["harmful"][0]
    assert sum(t.text == "それはあなたが悪いですね。" for t in harm) == 1
    two = copies["harmful_two"][0]
    assert sum(t.text == "それはあなたが悪いですね。" for t in two) == 2
    # the parrot: the opening (before any client turn) stays, every later block echoes the client before it
    echo = [t.text for t in copies["echo_client"][0] if t.role == "counselor"]
    assert echo[:2] == ["甲の相談員0。", "甲の続き0。"]
    assert echo[2:] == [f"そうなんですね。甲の相談者{k}、ということですね。" for k in range(7)]


def test_the_parrot_keeps_the_end_of_the_last_sentence():
    from kokoro.perturb import echo

    assert (
        echo("眠れません。毎晩三時に目が覚めてしまうんです")
        == "そうなんですね。毎晩三時に目が覚めてしまうんです、ということですね。"
    )
    assert echo("ああ！\nそれで会社を休みました。", "", "のですね。", 6) == "会社を休みました"[-6:] + "のですね。"


def test_copies_are_deterministic_and_seeded():
    a, b = session("甲"), session("乙")
    pool = [bl for bl in blocks(b) if bl[0].role == "counselor"]
    one = perturb(a, "other_sessions", pool=pool, seed=3)
    assert one == perturb(a, "other_sessions", pool=pool, seed=3)
    assert perturb(a, "shuffle_within", seed=1) != perturb(a, "shuffle_within", seed=2)
    half = perturb(a, "backchannel", fraction=0.5, backchannel="ええ。")
    assert sum(t.text == "ええ。" for t in half) == 4


def test_bad_requests_say_what_is_missing():
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(session("甲"), "nonsense")
    with pytest.raises(ValueError, match="pool"):
        perturb(session("甲"), "other_sessions")
    with pytest.raises(ValueError, match="harmful remarks"):
        perturb(session("甲"), "harmful")


def test_auc_counts_ties_half():
    assert auc([3, 2], [1, 2]) == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert auc([5, 6], [1, 2]) == 1.0 and auc([1], [1]) == 0.5


def test_coherence_features_see_a_counselor_who_answers_someone_else():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from kokoro.cpu_scorer import COHERENCE, coherence_features

    def talk(topics):
        out = []
        for k, (cl, co) in enumerate(topics):
            out += [Turn("client", f"2024-01-01T10:{k:02d}:00", cl), Turn("counselor", f"2024-01-01T10:{k:02d}:30", co)]
        return out

    work = [
        (f"上司に{w}と言われました", f"上司に{w}と言われたのですね") for w in ("怒鳴られる", "無視される", "比べられる")
    ]
    school = [(f"親と{w}で揉めています", f"親御さんと{w}で揉めているのですね") for w in ("進学", "部活", "門限")]
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit([x for p in work + school for x in p])
    real = dict(zip(COHERENCE, coherence_features(talk(work), vec)))
    mixed = dict(zip(COHERENCE, coherence_features(talk([(c, s[1]) for (c, _), s in zip(work, school)]), vec)))
    assert len(real) == len(COHERENCE)
    assert real["counselor_echoes_client"] > 0.5 > mixed["counselor_echoes_client"]
    assert real["tfidf_counselor_client"] > mixed["tfidf_counselor_client"]
    assert coherence_features([], vec) == [0.0] * len(COHERENCE)
    repeated = talk([(c, "そうなんですね") for c, _ in work])
    assert dict(zip(COHERENCE, coherence_features(repeated, vec)))["counselor_repeats"] == pytest.approx(2 / 3)


def test_a_counselor_who_asks_again_is_seen_and_trained_against():
    """The re-ask share counts turns re-asking an earlier question (same words or same things);
    the training copies that circle back are what it reads; older scorers read fewer features."""
    import random

    from sklearn.feature_extraction.text import TfidfVectorizer

    from kokoro.conversation import re_asks, reask_share
    from kokoro.cpu_scorer import COHERENCE, ScorerArtifactError, coherence_matrix
    from kokoro.dataset import merge_turns
    from training.coherence import reasking

    asks = ["お仕事は何をされていますか？", "そうなんですね。ご家族とは話せていますか？", "大変でしたね。"]
    assert reask_share(asks) == 0.0
    assert reask_share(asks + ["仕事について、もう少し教えていただけますか？"]) == pytest.approx(1 / 3)
    assert reask_share(asks[:1]) == 0.0 and reask_share([]) == 0.0
    turns = []
    for k, (co, cl) in enumerate(zip(asks * 3, ["会社員です", "あまり話せません", "はい"] * 3)):
        turns += [Turn("counselor", f"2024-01-01T10:{k:02d}:00", co), Turn("client", f"2024-01-01T10:{k:02d}:30", cl)]
    copy = reasking(turns, random.Random(0), 1.0)
    said = [t.text for t in merge_turns(copy) if t.role == "counselor"]
    assert said[0] == asks[0] and client_side(copy) == client_side(turns)
    assert all(re_asks(s, said[:1]) for s in said[1:])
    vec = TfidfVectorizer(analyzer="char").fit(asks)
    m = coherence_matrix([turns, copy], vec)
    col = COHERENCE.index("counselor_reasks")
    assert m[1, col] == 1.0 > m[0, col]
    assert coherence_matrix([turns], vec, COHERENCE[:-1]).shape == (1, len(COHERENCE) - 1)
    with pytest.raises(ScorerArtifactError, match="rebuild the scorer"):
        coherence_matrix([turns], vec, ["no_such_feature"])


def test_short_training_sessions_end_with_the_counselors_answer():
    """The coherence model's short sessions: the first k client blocks (4-20) and the counselor's
    answer to the k-th, as a replay's human counselor; seeded."""
    from kokoro.perturb import first_client_blocks
    from training.coherence import PREFIX_CLIENT_BLOCKS, prefixes

    s = session("甲", 30)
    cut = first_client_blocks(s, 5)
    assert cut == s[: len(cut)] and cut[-1].role == "counselor"
    assert sum(1 for b in blocks(cut) if b[0].role == "client") == 5
    assert first_client_blocks(s, 99) == s and first_client_blocks(s, 0) == s[:2]
    many = prefixes([s] * 40, seed=1)
    ks = {sum(1 for b in blocks(c) if b[0].role == "client") for c in many}
    assert min(ks) >= PREFIX_CLIENT_BLOCKS[0] and max(ks) <= PREFIX_CLIENT_BLOCKS[1] and len(ks) > 5
    assert prefixes([s] * 40, seed=1) == many != prefixes([s] * 40, seed=2)


def test_shallow_copies_fill_one_formula_with_the_clients_words():
    """The shallow training copies: the client's side kept, the opening kept, and each changed
    reply a back-channel and either a parrot of the client's block or a vague question."""
    import random

    from kokoro.dataset import merge_turns
    from training.coherence import BACKCHANNELS, ECHO_ENDINGS, REASK_FRAMES, shallow

    s = session("甲", 12)
    copy = shallow(s, random.Random(0), 1.0)
    assert client_side(copy) == client_side(s) and copy[:2] == s[:2]
    said = [t.text for t in merge_turns(copy) if t.role == "counselor"][1:]
    assert said and all(x.startswith(BACKCHANNELS) for x in said)
    frames = tuple(f.split("{n}")[1] for f in REASK_FRAMES)
    assert all(x.endswith(ECHO_ENDINGS + frames) for x in said)
    openers = [next(b for b in BACKCHANNELS if x.startswith(b)) for x in said]
    assert max(map(openers.count, openers)) >= len(said) / 2  # one back-channel for most replies
    assert shallow(s, random.Random(0), 0.0) == s


@pytest.mark.slow
def test_trained_on_short_sessions_the_coherence_model_leaves_real_short_ones_alone(dialogues):
    """Real sessions cut after 12 client blocks (what the bot often scores) are flagged as
    incoherent less often by a model that saw short sessions than by one that saw whole ones."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from kokoro.cpu_scorer import coherence_matrix
    from kokoro.perturb import first_client_blocks
    from training.coherence import fit

    train, held = [list(d.turns) for d in dialogues[:300]], [list(d.turns) for d in dialogues[300:450]]
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2).fit(
        [t.text for s in train for t in s if t.role == "counselor"]
    )
    short = coherence_matrix([first_client_blocks(s, 12) for s in held], vec)
    flagged = {k: float((fit(train, vec, 1, short=k).predict_proba(short)[:, 1] > 0.9).mean()) for k in (False, True)}
    assert flagged[True] < flagged[False], flagged


def test_the_gate_is_the_most_sensitive_within_the_slack(monkeypatch):
    """choose_gate: among settings that separate the suite's copies, the lowest gate and then the
    strongest penalty whose validation MAE is within ``slack`` of the smallest."""
    import numpy as np

    import training.coherence as coh

    class Model:  # column 0 of a row is its probability of being incoherent
        def predict_proba(self, X):
            return np.c_[1 - X[:, 0], X[:, 0]]

    monkeypatch.setattr(coh, "coherence_matrix", lambda ss, vec, cache=None: np.ones((len(ss), 1)))  # copies: 1
    sessions = [session(t) for t in "甲乙丙丁"]
    raw = np.full((4, 20), 3.0)
    real_q = np.array([[0.95], [0.0], [0.0], [0.0]])  # only a gate starting at 0.9 touches a real one
    args = (Model(), None, sessions, raw, raw.copy(), lambda c: np.full((len(c), 20), 3.0), np.zeros(20))
    gates, strengths = ((0.9, 0.99), (0.97, 0.999), (0.99, 0.9999)), (0.5, 0.7, 1.0)
    pick = lambda slack: coh.choose_gate(*args, gates, strengths, 0.95, real_q, slack)["chosen"]
    assert (pick(0.0)["lo"], pick(0.0)["strength"]) == (0.97, 1.0)
    assert (pick(10.0)["lo"], pick(10.0)["strength"]) == (0.9, 1.0)


REMARKS_SHA256 = {
    "remarks_holdout.tsv": "05b680a0a866bee0daab8b93b1987447daf597adec68276d740788fa39582ae8",
    "remarks_holdout2.tsv": "624e1aed0e0f23ec2392d5eb96a44ecedf1978941721fecd337fa916594dd2d5",
}


def test_the_held_out_remarks_are_frozen_and_feed_the_suite():
    """Issue 33: the remarks `evaluation scores --perturb` inserts were written before the flag rules
    and are never trained or tuned on; editing them silently would void every figure made with them."""
    import hashlib

    from kokoro.perturb import EARLIER_REMARKS, REMARKS_HOLDOUT, held_out_remarks

    for path in (REMARKS_HOLDOUT, *EARLIER_REMARKS):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == REMARKS_SHA256[path.name], (
            f"{path.name} changed: it is frozen; write a new held-out list instead and say so"
        )
    harmful, ok = held_out_remarks(), held_out_remarks("ok")
    assert len(harmful) == 70 and len(held_out_remarks("unethical")) == 15 and len(ok) == 35
    train = (REMARKS_HOLDOUT.parent / "remarks_train.tsv").read_text(encoding="utf-8")
    assert not [t for t in harmful + ok if t in train], "a held-out line is in the training list"
    copy = suite([session("a")], "harmful", harmful)[0]
    assert sum(t.text in harmful for t in copy) == 1, "the suite inserts one of the held-out remarks"
