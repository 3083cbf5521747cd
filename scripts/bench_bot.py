"""Bot benchmark: prints ratios measured in one run (machines are noisy; no timed assertions).

  .venv/bin/python scripts/bench_bot.py [--gguf MODEL] [--lora ADAPTER] [--data DIR] [--turns 40]

1. webhook ack latency p50/p99 under concurrent posts while generation is busy (LINE wants < 2 s)
2. turn latency at turn N vs turn 1 of one session (goal ≤ 1.3)
3. turn latency with 8 interleaved sessions vs 1 (goal ≤ 1.3)
4. bot overhead vs raw llama-cpp-python on the same GGUF and prompt (goal ≤ 5 %)
5. capacity: sessions paced like KokoroChat (a client turn every ~120 s) served with p95 reply
   latency under 10 s, from a queue simulation over the measured service times (goal ≥ 50)
6. conversation quality of the long session (issue 12's measure: near-duplicate and re-ask shares)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.emulator.client import Emulator  # noqa: E402
from evaluation.simulate import conversation_figures  # noqa: E402
from kokoro.dataset import load  # noqa: E402
from kokoro.generation import prompt_tokens  # noqa: E402
from kokoro.splits import counselor_split  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def client_turns(data, n):
    ds = load(data)
    by = {d.id: d for d in ds}
    for i in counselor_split(ds, "full").test:
        turns = [t.text for t in by[i].merged() if t.role == "client"]
        if len(turns) >= n:
            return turns[:n]
    raise SystemExit(f"no test dialogue has {n} client turns")


TOKENS: list[int] = []


def timed_turn(engine, user, text):
    if not engine.store.open_session(user):  # the message that opens a session is answered by the opening
        engine.client_text(user, "こんにちは")
    engine.client_text(user, text)
    t = time.perf_counter()
    engine.respond(user)
    TOKENS.append(max(1, engine.backend.last_usage.get("completion_tokens", 1)))
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default="demo")
    ap.add_argument("--lora")
    ap.add_argument("--data", default=os.environ.get("KOKOROCHAT_DIR", "../shared/data/kokorochat"))
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-repetition-control", action="store_true", help="the bot without it (the latency before)")
    a = ap.parse_args()
    texts = client_turns(a.data, a.turns)
    db = os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    kw = dict(
        counselor_gguf=a.gguf,
        counselor_lora=a.lora,
        n_threads=a.threads,
        contexts=8,
        n_ctx=4096,
        quiet_gap_s=0.0,
        tick_s=0.05,
        db_path=db,
        repetition=not a.no_repetition_control,
    )
    emu = Emulator(scheduler=False, **kw)
    engine = emu.runtime.engine
    from bot.crisis_model import model

    model()  # trained once at process start (about 4 s): not a turn's cost, so not in turn 1's time
    for u in [f"U{i:032x}" for i in range(9)]:
        engine.store.update_user(u, consent_at=time.time())

    # 2. one session: turn N vs turn 1
    solo = "U" + "0" * 32
    lat = [timed_turn(engine, solo, t) for t in texts]
    solo_tok = list(TOKENS)
    r_len = statistics.fmean(lat[-3:]) / statistics.fmean(lat[:3])
    per_tok = [x / n for x, n in zip(lat, solo_tok)]
    r_len_tok = statistics.fmean(per_tok[-3:]) / statistics.fmean(per_tok[:3])
    said = [t["text"] for t in engine.store.turns(engine.store.open_session(solo)["id"]) if t["role"] == "counselor"]
    quality = conversation_figures([said[1:]], [said[:1]])  # the opening is said, not a reply
    # 3. 8 interleaved sessions vs 1 (turns 1..6 of each, round robin)
    users = [f"U{i:032x}" for i in range(1, 9)]
    inter = []
    for k in range(6):
        for u in users:
            inter.append(timed_turn(engine, u, texts[k]))
    r_inter = statistics.fmean(inter) / statistics.fmean(lat[:6])
    inter_tok = TOKENS[len(solo_tok) :]
    r_inter_tok = (sum(inter) / sum(inter_tok)) / (sum(lat[:6]) / sum(solo_tok[:6]))
    # 4. overhead vs raw llama-cpp on the same prompt
    from kokoro.llm import open_llama

    s = engine.s
    raw = open_llama(
        s.counselor_gguf,
        lora_path=s.counselor_lora,
        n_ctx=s.n_ctx,
        n_batch=256,
        n_threads=s.n_threads,
        n_gpu_layers=s.n_gpu_layers,
        flash_attn=s.flash_attn,
    )
    bot_t, raw_t = [], []
    for i in range(4):
        u = f"U{100 + i:032x}"
        engine.store.update_user(u, consent_at=time.time())
        engine.client_text(u, "こんにちは")  # opens the session (answered by the opening)
        engine.client_text(u, texts[0])
        sess = engine.store.open_session(u)
        prompt, _ = engine.prompt(sess, engine.store.turns(sess["id"]))
        t = time.perf_counter()
        engine.respond(u)
        bot_t.append(time.perf_counter() - t)
        raw.reset()
        t = time.perf_counter()
        raw.create_completion(
            prompt_tokens(raw, prompt),
            stop=list(engine.backend.fmt.stops),
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            repeat_penalty=s.repeat_penalty,
            top_p=s.top_p,
        )
        raw_t.append(time.perf_counter() - t)
    overhead = statistics.fmean(bot_t) / statistics.fmean(raw_t) - 1
    emu.close()

    # 1. ack latency while generation is busy (background threads on)
    emu = Emulator(**dict(kw, db_path=os.path.join(tempfile.mkdtemp(), "ack.sqlite3")))
    busy = "U" + "f" * 32
    emu.runtime.engine.store.update_user(busy, consent_at=time.time())
    acks = []

    def poster(n):
        for _ in range(n):
            u = "U" + uuid.uuid4().hex
            t = time.perf_counter()
            emu.follow(u)
            acks.append(time.perf_counter() - t)

    emu.text(busy, "こんにちは")  # opens the session: answered by the opening, no generation
    emu.fake.wait_for(1, 10, busy)
    emu.text(busy, texts[0])  # this one keeps the generation thread busy
    time.sleep(0.2)
    ths = [threading.Thread(target=poster, args=(25,)) for _ in range(8)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    emu.close()

    # 5. capacity from the measured service times (one generation thread serves all sessions)
    service = lat + inter

    def p95_latency(n_sessions, minutes=60, rng=random.Random(0)):
        arrivals = sorted(
            rng.uniform(0, 120) + k * 120 + rng.gauss(0, 20) for _ in range(n_sessions) for k in range(minutes // 2)
        )
        free, waits = 0.0, []
        for t in arrivals:
            start = max(t, free)
            free = start + rng.choice(service)
            waits.append(free - t)
        return pct(waits, 0.95)

    cap = 1
    while cap < 2000 and p95_latency(cap + 1) < 10.0:
        cap += 1
    print(f"model: {s.counselor_gguf} lora: {s.counselor_lora} threads: {a.threads} repetition control: {s.repetition}")
    print(
        f"1. webhook ack while generating: p50 {1000 * pct(acks, 0.5):.0f} ms, p99 {1000 * pct(acks, 0.99):.0f} ms "
        f"({len(acks)} posts from 8 threads; p99 / 2 s deadline = {pct(acks, 0.99) / 2:.3f})"
    )
    print(
        f"2. turn latency turn {a.turns} / turn 1 (3-turn means): {r_len:.2f}  "
        f"(turn 1 {statistics.fmean(lat[:3]):.2f} s, turn {a.turns} {statistics.fmean(lat[-3:]):.2f} s); "
        f"per generated token: {r_len_tok:.2f}"
    )
    print(f"3. 8 interleaved sessions / 1 session (turns 1-6): {r_inter:.2f}; per generated token: {r_inter_tok:.2f}")
    print(f"4. bot overhead vs raw llama-cpp on the same prompt: {100 * overhead:+.1f} %")
    print(
        f"5. capacity at p95 < 10 s, one client turn per ~120 s per session: {cap} sessions "
        f"(mean service {statistics.fmean(service):.2f} s)"
    )
    print(
        f"6. the {a.turns}-turn session's replies (evaluation.simulate.conversation_figures): near-duplicates "
        f"{100 * quality['near_duplicate_share']:.1f} %, re-asks {100 * quality['re_ask_share']:.1f} %, "
        f"distinct-1/2 {quality['dist1_per_session']:.1f} / {quality['dist2_per_session']:.1f}"
    )


if __name__ == "__main__":
    main()
