"""Chaos run: the real app under gunicorn (the Procfile's command), a fake LINE API and a fake
completions server, all on loopback and bounded in time. Prints figures measured in this one run
(machines are noisy: nothing here is asserted; docs/results.md reports a run).

  .venv/bin/python scripts/chaos.py [--fuzz 10000] [--valid 20000] [--kills 10] [--hang 120]
                                    [--load-sessions 4,8,12,16,24] [--skip-load]

1. fuzz: N signed bodies derived from LINE's official samples (fields of the wrong type, missing,
   deep nesting, huge strings, unicode, many events) → responses ≥ 500
2. valid: M valid events from 8 concurrent posters → responses other than 200
3. kill -9: live sessions; the whole gunicorn is killed K times at random moments and restarted;
   the posters redeliver what was not acknowledged, as LINE does → client messages left
   unanswered, duplicate deliveries
4. hang: the LINE API accepts connections and answers nothing for H seconds while clients write
   → seconds from recovery until everything owed is delivered
5. webhook ack latency p50 / p99 over every phase
6. live load with the real demo counselor (llama.cpp in-process): concurrent sessions replaying
   KokoroChat test clients, each waiting for the reply then "typing" for --think seconds (3 s:
   KokoroChat's median client gap, measured and printed, compressed about 11×) → the most
   sessions served with p95 reply latency < 10 s
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.emulator.client import event, sign  # noqa: E402
from bot.emulator.client import post_unsigned as send_unsigned  # noqa: E402
from bot.emulator.fake_api import FakeLine  # noqa: E402

SECRET, TOKEN = "chaos-secret", "chaos-token"
SAMPLES = REPO.parent / "shared" / "line" / "webhook-samples"
ACKS: list[float] = []
PHASE_ACKS: dict[str, list[float]] = {}
PHASE = ["start"]
ACK_LOCK = threading.Lock()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- servers
def fake_completions() -> tuple[str, object]:
    """An OpenAI-compatible /v1/completions whose reply is a function of the prompt (so a reply
    generated twice is the same text, and a duplicate delivery is visible as one)."""
    from flask import Flask, request
    from werkzeug.serving import make_server

    app = Flask("fake-completions")

    @app.post("/v1/completions")
    def completions():
        prompt = request.get_json()["prompt"]
        text = "お話ししてくださってありがとうございます。" + hashlib.sha256(prompt.encode()).hexdigest()[:10]
        return {"choices": [{"text": text, "index": 0, "finish_reason": "stop"}]}

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_port}/v1", srv


class Bot:
    """gunicorn with the Procfile's command on a loopback port."""

    def __init__(self, db: Path, api: str, env_extra: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            LINE_CHANNEL_SECRET=SECRET,
            LINE_CHANNEL_ACCESS_TOKEN=TOKEN,
            LINE_API_HOST=api,
            KOKORO_BOT_DB=str(db),
            KOKORO_SCORER=str(db.parent / "no-scorer"),
            KOKORO_QUIET_GAP="0.3",
            KOKORO_TICK="0.2",
            KOKORO_RETRY_BASE="0.2",
            KOKORO_IDLE_TIMEOUT="100000",
            KOKORO_SESSION_LIMIT="100000",
            PORT=str(self.port),
        )
        self.env.update(env_extra)
        self.proc = None
        self.log = open(db.parent / "gunicorn.log", "a")

    def start(self, wait_s: float = 120) -> None:
        cmd = (REPO / "Procfile").read_text().split(":", 1)[1].strip()
        cmd = cmd.replace("${PORT:-5000}", str(self.port)).replace("0.0.0.0", "127.0.0.1").split()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn"] + cmd[1:], cwd=REPO, env=self.env, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if json.load(urllib.request.urlopen(self.url + "/healthz", timeout=2)).get("role") == "active":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise SystemExit("gunicorn did not come up; see gunicorn.log")

    def kill9(self) -> None:
        """kill -9 of the master and its worker: nothing gets to clean up."""
        for pid in _children(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill9()


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


# ---------------------------------------------------------------- posting like LINE
def post(bot: Bot, body: bytes, timeout: float = 10.0) -> int:
    req = urllib.request.Request(
        bot.url + "/callback",
        data=body,
        headers={"X-Line-Signature": sign(SECRET, body), "Content-Type": "application/json"},
    )
    t, phase = time.perf_counter(), PHASE[0]  # the phase the post was made in
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        return -1  # no answer (the bot is down): LINE redelivers
    with ACK_LOCK:
        ACKS.append(time.perf_counter() - t)
        PHASE_ACKS.setdefault(phase, []).append(ACKS[-1])
    return status


def body_of(events: list[dict]) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": events}, ensure_ascii=False).encode()


def deliver_like_line(bot: Bot, events: list[dict], give_up_s: float = 120.0) -> None:
    """Post until acknowledged with 200; a redelivery keeps the webhookEventId (as LINE's does)."""
    deadline = time.monotonic() + give_up_s
    evs = events
    while time.monotonic() < deadline:
        if post(bot, body_of(evs)) == 200:
            return
        evs = [dict(e, deliveryContext={"isRedelivery": True}) for e in events]
        time.sleep(0.2)
    raise RuntimeError("a webhook was never acknowledged")


# ---------------------------------------------------------------- 1. fuzz
BIG = [2**63, 2**64, 2**70, -(2**70), 10**30]  # beyond SQLite's 64-bit INTEGER
JUNK = [None, 0, -1, 1.5, True, "", "x" * 5000, "😀" * 300, [], [1, [2, [3]]], {}, {"a": {"b": {"c": [None]}}}] + BIG
# every field a handler reads (bot/events.py), and what it should be
READ = [
    ("type",),
    ("mode",),
    ("timestamp",),
    ("replyToken",),
    ("webhookEventId",),
    ("source",),
    ("source", "type"),
    ("source", "userId"),
    ("source", "groupId"),
    ("message",),
    ("message", "type"),
    ("message", "text"),
    ("message", "id"),
    ("message", "quoteToken"),
    ("postback",),
    ("postback", "data"),
    ("unsend", "messageId"),
]
WRONG = [None, 0, 2**70, -(2**70), 1.5, True, [], ["x"], {}, {"x": 2**70}, ""]


def mutate(doc: dict, rnd: random.Random) -> bytes:
    d = copy.deepcopy(doc)
    evs = d.get("events") or [{}]
    for _ in range(rnd.randint(1, 4)):
        ev = rnd.choice(evs) if evs else {}
        paths = list(_paths(ev))
        if not paths:
            break
        *parent, key = rnd.choice(paths)
        obj = ev
        for k in parent:
            obj = obj[k]
        r = rnd.random()
        if r < 0.1:  # a field a handler reads, given a value of the wrong type
            at = rnd.choice(READ)
            obj = ev
            for k in at[:-1]:
                if not isinstance(obj.get(k), dict):
                    obj[k] = {}
                obj = obj[k]
            obj[at[-1]] = copy.deepcopy(rnd.choice(WRONG))
        elif r < 0.2:  # a very large integer at any position
            obj[key] = rnd.choice(BIG)
        elif r < 0.5:
            obj[key] = copy.deepcopy(rnd.choice(JUNK))
        elif r < 0.7 and isinstance(obj, dict):
            del obj[key]
        elif r < 0.8:
            obj[key] = _deep(rnd.randint(10, 150))
        else:
            obj[key] = str(rnd.random())
    if rnd.random() < 0.05:
        d["events"] = [copy.deepcopy(e) for e in evs * rnd.randint(2, 40)]
    if rnd.random() < 0.03:
        d["events"] = copy.deepcopy(rnd.choice(JUNK))
    for ev in d["events"] if isinstance(d.get("events"), list) else []:
        if isinstance(ev, dict) and rnd.random() < 0.9:
            ev["webhookEventId"] = uuid.uuid4().hex  # mostly fresh ids, so events are really handled
    raw = json.dumps(d, ensure_ascii=False)
    if rnd.random() < 0.02:
        raw = raw[: rnd.randint(0, len(raw))]  # truncated JSON
    elif rnd.random() < 0.01:
        raw = '{"events": [' + "[" * 50000 + "]" * 50000 + "]}"  # nesting deeper than any parser's stack
    return raw.encode()


def _paths(obj, prefix=()):
    if len(prefix) >= 6:  # fields near the top are where the types matter
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _deep(n: int):
    x: object = []
    for _ in range(n):
        x = [x]
    return x


def fuzz(bot: Bot, n: int, huge: int = 3) -> dict:
    """``n`` signed mutated bodies, then ``huge`` unsigned 64 MB bodies (each must get 413, unread)."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SAMPLES.glob("*.json"))]
    rnd = random.Random(0)
    bodies = [mutate(rnd.choice(docs), rnd) for _ in range(n)]
    with ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(lambda b: post(bot, b), bodies))
    big = [post_unsigned(bot.url + "/callback", 64 << 20) for _ in range(huge)]
    with_big = sum(any(str(b) in body.decode("utf-8", "replace") for b in BIG) for body in bodies)
    return {
        "bodies": n,
        "bodies_with_an_integer_beyond_64_bits": with_big,
        "status_5xx": sum(s >= 500 for s in statuses),
        "no_answer": statuses.count(-1),
        "status_counts": {str(k): statuses.count(k) for k in sorted(set(statuses))},
        "unsigned_64mb_bodies": {str(k): big.count(k) for k in sorted(set(big))},
    }


def post_unsigned(url: str, size: int) -> int:
    """The status an unsigned body of ``size`` bytes gets; -1 when the connection was dropped."""
    try:
        return send_unsigned(url, size)
    except OSError:
        return -1


# ---------------------------------------------------------------- 2. valid events
def valid(bot: Bot, fake: FakeLine, n: int) -> dict:
    users = [f"U{i:032x}" for i in range(max(1, n // 10))]
    bodies = []
    for i in range(n):
        u = users[i % len(users)]
        kind = i % 3
        if kind == 0:  # answered (a greeting)
            ev = event(u, "follow", fake, follow={"isUnblocked": False})
        elif kind == 1:  # acknowledged, nothing to say
            ev = event(u, "postback", fake, postback={"data": "unknown=1"})
        else:  # another channel is active for this chat
            ev = dict(
                event(u, "message", fake, message={"id": str(10**15 + i), "type": "text", "text": "x"}), mode="standby"
            )
        bodies.append(body_of([ev]))
    with ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(lambda b: post(bot, b), bodies))
    return {"events": n, "posters": 8, "non_200": sum(s != 200 for s in statuses)}


# ---------------------------------------------------------------- 3./4. live sessions
# a client at risk: a crisis line, a means at hand in answer to the protocol, "I'll try", the means
# put away; each gets exactly one safety message (bot/sessions.py: crisis_first, follow_up), then
# ordinary talk
CRISIS_SCRIPT = ("もう死にたいです", "薬がたくさん手元にあります", "はい、やってみます", "別の部屋に置いてきました")


class Clients:
    """Consented users writing text messages; knows every message it sent (and when). The first
    ``at_risk`` users begin with CRISIS_SCRIPT."""

    def __init__(self, bot: Bot, fake: FakeLine, n: int, tag: str, at_risk: int = 0):
        self.bot, self.fake = bot, fake
        self.users = [f"U{tag}{i:0{32 - len(tag)}x}" for i in range(n)]
        self.at_risk = self.users[:at_risk]
        self.sent: list[tuple[str, float]] = []
        for u in self.users:
            deliver_like_line(bot, [event(u, "follow", fake, follow={"isUnblocked": False})])
            deliver_like_line(bot, [event(u, "postback", fake, postback={"data": "action=consent"})])

    def write(self, user: str, i: int) -> None:
        text = f"{user[-4:]}の{i}番目の話です。仕事のことで少し悩んでいます。"
        nth = sum(u == user for u, _ in self.sent)  # this user's own count (callers' i may be global)
        if user in self.at_risk and nth < len(CRISIS_SCRIPT):
            text = CRISIS_SCRIPT[nth]
        ev = event(
            user,
            "message",
            self.fake,
            message={"id": uuid.uuid4().hex[:18], "type": "text", "text": text, "quoteToken": "q"},
        )
        deliver_like_line(self.bot, [ev])
        self.sent.append((user, time.time()))


def settled(db: Path, timeout: float) -> float | None:
    """Seconds until nothing is owed (no pending event, reply or outbox row), None if not reached."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        try:
            c = sqlite3.connect(db, timeout=5)
            busy = c.execute(
                "select (select count(*) from events where status = 'pending') + (select count(*) from sessions "
                "where status = 'open' and pending_reply = 1) + (select count(*) from outbox where status in "
                "('pending', 'sending'))"
            ).fetchone()[0]
            c.close()
            if not busy:
                return time.monotonic() - t
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    return None


def opened_by(turns: list[tuple[str, str]]) -> bool:
    """The session's only client turn is the message that opened it, answered by the fixed opening
    stored just before it (bot/sessions.py): answered, though no counselor turn follows it."""
    from bot import messages as M

    return [r for r, _ in turns] == ["counselor", "client"] and turns[0][1].startswith(M.GREETING)


def audit(db: Path, fake: FakeLine, users: list[str]) -> dict:
    """Unanswered client turns (no counselor turn after them in their session, the message that
    opened a session and got the opening aside) and duplicate deliveries (the same text delivered
    twice to one user)."""
    c = sqlite3.connect(db)
    unanswered = 0
    for (sid,) in c.execute("select id from sessions where user_id in (%s)" % ",".join("?" * len(users)), users):
        turns = c.execute("select role, text from turns where session_id = ? order by id", [sid]).fetchall()
        if turns and turns[-1][0] == "client" and not opened_by(turns):
            unanswered += 1
    undelivered = c.execute(
        "select count(*) from outbox where status != 'sent' and user_id in (%s)" % ",".join("?" * len(users)), users
    ).fetchone()[0]
    c.close()
    dup = 0
    for u in users:
        texts = [m.get("text") for m in fake.delivered(u)]
        dup += len(texts) - len(set(texts))
    return {"unanswered_client_turns": unanswered, "undelivered_messages": undelivered, "duplicate_deliveries": dup}


def safety_audit(clients: Clients) -> dict:
    """For each client at risk, how many times each safety message of CRISIS_SCRIPT reached them
    (the protocol, the means-safety message, the wait, the thanks for putting the means away; one
    per script line): 1 each for the lines they sent, or what went wrong (0: never answered; 2: sent twice)."""
    from bot import messages as M
    from bot.safety import crisis_message

    F = M.SAFETY_FOLLOWUPS
    want = (crisis_message(), F["means_safety"], F["waiting"], F["relief_away"])
    missing = twice = 0
    for u in clients.at_risk:
        texts = [m.get("text", "") for m in clients.fake.delivered(u)]
        sent = sum(v == u for v, _ in clients.sent)  # a short phase may end before the script does
        counts = [texts.count(w) for w in want]
        missing += sum(c == 0 for c in counts[:sent])
        twice += sum(c > 1 for c in counts)
    return {"clients_at_risk": len(clients.at_risk), "safety_messages_missing": missing, "safety_messages_twice": twice}


def kills(bot: Bot, fake: FakeLine, db: Path, k: int, n_users: int = 12, at_risk: int = 4) -> dict:
    clients = Clients(bot, fake, n_users, "k", at_risk)
    rnd = random.Random(1)
    stop = threading.Event()

    def writer(u):
        i = 0
        while not stop.is_set():
            clients.write(u, i)
            i += 1
            time.sleep(rnd.uniform(0.5, 2.0))

    threads = [threading.Thread(target=writer, args=(u,), daemon=True) for u in clients.users]
    for t in threads:
        t.start()
    for _ in range(k):
        time.sleep(rnd.uniform(1.0, 4.0))
        PHASE[0] = "kill9-restarting"  # acks that waited in the socket backlog while gunicorn booted
        bot.kill9()
        time.sleep(rnd.uniform(0.0, 1.0))
        bot.start()
        PHASE[0] = "kill9"
    stop.set()
    for t in threads:
        t.join(150)
    wait = settled(db, 120)
    return dict(
        kills=k,
        users=n_users,
        client_messages=len(clients.sent),
        settled_s=wait,
        **audit(db, fake, clients.users),
        **safety_audit(clients),
    )


def hang(bot: Bot, fake: FakeLine, db: Path, seconds: float, n_users: int = 8, at_risk: int = 2) -> dict:
    clients = Clients(bot, fake, n_users, "h", at_risk)
    settled(db, 60)
    fake.hang()
    t_end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < t_end:
        clients.write(clients.users[i % n_users], i)
        i += 1
        time.sleep(max(0.0, min(2.0, t_end - time.monotonic())))
    fake.recover()
    wait = settled(db, 300)
    return dict(
        hang_s=seconds,
        client_messages_during=i,
        seconds_to_full_delivery=wait,
        **audit(db, fake, clients.users),
        **safety_audit(clients),
    )


# ---------------------------------------------------------------- 6. live load, real model
def client_turns(n_sessions: int) -> list[list[str]]:
    from kokoro.dataset import load
    from kokoro.splits import counselor_split

    data = os.environ.get("KOKOROCHAT_DIR") or str(REPO.parent / "shared" / "data" / "kokorochat")
    ds = load(data)
    by = {d.id: d for d in ds}
    test = [by[i] for i in counselor_split(ds, "full").test]
    return [[t.text for t in d.merged() if t.role == "client"][1:9] for d in test[:n_sessions]]


def median_client_gap(n_dialogues: int = 2000) -> float:
    """Median seconds from a counselor turn to the client's next turn in KokoroChat (merged turns)."""
    from datetime import datetime

    from kokoro.dataset import load

    data = os.environ.get("KOKOROCHAT_DIR") or str(REPO.parent / "shared" / "data" / "kokorochat")
    gaps = []
    for d in load(data)[:n_dialogues]:
        m = d.merged()
        for a, b in zip(m, m[1:]):
            if a.role == "counselor" and b.role == "client":
                g = (datetime.fromisoformat(b.time) - datetime.fromisoformat(a.time)).total_seconds()
                if 0 <= g < 3600:
                    gaps.append(g)
    return statistics.median(gaps)


def live_load(sessions_list: list[int], seconds: float = 45.0, gap: float = 3.0) -> list[dict]:
    """Each session as the bot holds it: the first client message is answered by the fixed opening
    (no model), every later one by a model reply; the client waits for that one answer, 'types'
    for ``gap`` seconds, and writes again. Reply latency is measured on the model replies only. A
    step in which a message gets no answer within 60 s, or no session gets a model reply, is a
    failure, reported as such (never as a latency)."""
    out = []
    for n in sessions_list:
        tmp = Path(tempfile.mkdtemp(prefix="chaos-load-"))
        fake = FakeLine(TOKEN)
        bot = Bot(
            tmp / "bot.sqlite3",
            fake.start(),
            {"KOKORO_THREADS": "2", "KOKORO_MAX_TOKENS": "48", "KOKORO_QUIET_GAP": "0.2", "KOKORO_CONTEXTS": "4"},
        )
        bot.start(300)
        latencies: list[float] = []
        openings: list[float] = []
        unanswered: list[int] = []
        try:
            clients = Clients(bot, fake, n, f"l{n}")
            scripts = client_turns(n)
            t_end = time.monotonic() + seconds

            def run(j):
                u = clients.users[j]
                for k, text in enumerate(scripts[j % len(scripts)] * 3):
                    if time.monotonic() > t_end:
                        return
                    before = len(fake.delivered(u))
                    ev = event(
                        u,
                        "message",
                        fake,
                        message={"id": uuid.uuid4().hex[:18], "type": "text", "text": text, "quoteToken": "q"},
                    )
                    t = time.monotonic()
                    deliver_like_line(bot, [ev])
                    got = fake.wait_for(before + 1, 60, u)  # one answer: the opening, then a reply
                    if len(got) <= before:
                        unanswered.append(j)
                        return
                    (openings if k == 0 else latencies).append(time.monotonic() - t)
                    time.sleep(gap)

            with ThreadPoolExecutor(n) as ex:
                list(ex.map(run, range(n)))
        finally:
            bot.stop()
            fake.stop()
        step = {
            "sessions": n,
            "replies": len(latencies),
            "openings": len(openings),
            "unanswered_messages": len(unanswered),
            "p50_s": round(pct(latencies, 0.5), 2),
            "p95_s": round(pct(latencies, 0.95), 2),
            "opening_p95_s": round(pct(openings, 0.95), 2),
        }
        if unanswered or not latencies:
            step["failed"] = (
                f"{len(unanswered)} message(s) got no answer within 60 s" if unanswered else "no model reply at all"
            )
        out.append(step)
        print(json.dumps({"live_load_step": out[-1]}, ensure_ascii=False), flush=True)
        if "failed" in step or pct(latencies, 0.95) >= 10.0:
            break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuzz", type=int, default=10000)
    ap.add_argument("--valid", type=int, default=20000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--hang", type=float, default=120.0)
    ap.add_argument("--load-sessions", default="4,8,12,16,24")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--think", type=float, default=3.0, help="seconds a simulated client types after each reply")
    args = ap.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
    fake = FakeLine(TOKEN)
    completions, srv = fake_completions()
    bot = Bot(
        tmp / "bot.sqlite3",
        fake.start(),
        {"KOKORO_BACKEND": "openai", "KOKORO_OPENAI_URL": completions, "KOKORO_API_TIMEOUT": "2"},
    )
    report: dict = {}
    try:
        bot.start()
        PHASE[0] = "fuzz"
        report["fuzz"] = fuzz(bot, args.fuzz)
        print(json.dumps({"fuzz": report["fuzz"]}), flush=True)
        PHASE[0] = "valid"
        report["valid"] = valid(bot, fake, args.valid)
        report["valid"]["seconds_to_handle_all"] = settled(tmp / "bot.sqlite3", 900)
        print(json.dumps({"valid": report["valid"]}), flush=True)
        PHASE[0] = "kill9"
        report["kill9"] = kills(bot, fake, tmp / "bot.sqlite3", args.kills)
        print(json.dumps({"kill9": report["kill9"]}), flush=True)
        PHASE[0] = "hang"
        report["hang"] = hang(bot, fake, tmp / "bot.sqlite3", args.hang)
        print(json.dumps({"hang": report["hang"]}), flush=True)
    finally:
        bot.stop()
        fake.stop()
        srv.shutdown()
    report["webhook_ack_ms"] = {
        "n": len(ACKS),
        "p50": round(1000 * pct(ACKS, 0.5), 1),
        "p99": round(1000 * pct(ACKS, 0.99), 1),
        "max": round(1000 * max(ACKS), 1),
        "p99_by_phase": {k: round(1000 * pct(v, 0.99), 1) for k, v in PHASE_ACKS.items()},
    }
    print(json.dumps({"webhook_ack_ms": report["webhook_ack_ms"]}), flush=True)
    if not args.skip_load:
        steps = live_load([int(x) for x in args.load_sessions.split(",")], gap=args.think)
        ok = [s["sessions"] for s in steps if "failed" not in s and s["p95_s"] < 10.0]
        median = median_client_gap()
        report["live_load"] = {
            "steps": steps,
            "sessions_at_p95_under_10s": max(ok) if ok else 0,
            "think_s": args.think,
            "kokorochat_median_client_gap_s": median,
            "time_compression": round(median / args.think, 1),
            "model": "embedded demo counselor (gemma-3-270m Q4_K_M + LoRA), KOKORO_THREADS=2, ≤ 48 reply tokens",
        }
    report["seconds"] = round(time.time() - t0)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    failed = [s for s in report.get("live_load", {}).get("steps", []) if "failed" in s]
    if failed:
        raise SystemExit(f"chaos: live load failed at {failed[0]['sessions']} sessions: {failed[0]['failed']}")


if __name__ == "__main__":
    main()
