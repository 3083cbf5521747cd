"""`python -m evaluation simulate`: simulated-client sessions run through the bot's own session
engine (the real webhook, store, prompts and generation, with the fake LINE API), then scored.

The client is either a replay of a KokoroChat test client's turns, or an LLM prompted as the
paper's Appendix E (the prompt lives in kokoro.prompts); it ends with <end> after ten turns."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from kokoro.chat_formats import ChatFormat
from kokoro.conversation import session_figures
from kokoro.dataset import Turn, load, merge_turns
from kokoro.flags import predicted_total
from kokoro.generation import prompt_tokens
from kokoro.items import ITEMS
from kokoro.prompts import CLIENT_END, client_sim_messages
from kokoro.session_audit import audit, summary
from kokoro.splits import counselor_split, ids_hash
from kokoro.stats import lexical_diversity
from kokoro.versions import library_versions


def conversation_figures(sessions: list[list[str]], before: list[list[str]] | None = None) -> dict:
    """Issue 12's conversation-quality measure over sessions of counselor replies: the share of
    replies that near-duplicate / re-ask an earlier counselor turn of the session
    (``kokoro.conversation``), distinct-1/2 per session (MeCab words, averaged over sessions) and
    the mean reply length in characters. ``before``: turns already said, not counted as replies."""
    from .metrics import distinct

    before = before or [[] for _ in sessions]
    figs = [session_figures(r, b) for r, b in zip(sessions, before)]
    n = sum(f["replies"] for f in figs)
    used = [r for r in sessions if r]
    return {
        "sessions": len(sessions),
        "replies": n,
        "near_duplicate_share": sum(f["near_duplicates"] for f in figs) / max(n, 1),
        "re_ask_share": sum(f["re_asks"] for f in figs) / max(n, 1),
        "dist1_per_session": statistics.fmean(distinct(r, 1) for r in used) if used else 0.0,
        "dist2_per_session": statistics.fmean(distinct(r, 2) for r in used) if used else 0.0,
        "mean_reply_chars": statistics.fmean(len(x) for r in sessions for x in r) if n else 0.0,
    }


def conversation_quality(records: list[dict]) -> dict:
    """``conversation_figures`` for the bot's sessions (the scripted opening is said, not a reply;
    the model's replies are the rest) beside the human counselors of the same replayed dialogues."""
    from bot import messages as M
    from bot.safety import crisis_message

    fixed = {crisis_message(), crisis_message(["harm_others"])}  # the bot's, not the model's
    bot, before = [], []
    for x in records:
        merged = [(t.role, t.text) for t in merge_turns([Turn(t["role"], "", t["text"]) for t in x["turns"]])]
        said = [text for role, text in merged if role == "counselor"]
        lead = [t for t in said[:1] if t.startswith(M.GREETING)]  # the opening, in whichever form
        before.append(lead)
        bot.append(said[len(lead) :])
        x["audit"] = audit(merged, len(lead), fixed)
    out = {"counselor": conversation_figures(bot, before)}
    out["counselor"]["audit"] = summary([x["audit"] for x in records])
    anchors = [x["human_turns"] for x in records if "human_turns" in x]
    if anchors:
        out["human"] = conversation_figures(human_replies(anchors))
        out["human"]["audit"] = summary([audit(h, int(bool(h) and h[0][0] == "counselor")) for h in anchors])
    return out


def human_replies(anchors: list[list[tuple[str, str]]]) -> list[list[str]]:
    """The human counselors' turns of each replayed dialogue's merged (role, text) blocks."""
    return [[text for role, text in h if role == "counselor"] for h in anchors]


def time_generation(backend) -> list[tuple[float, int]]:
    """Wrap the bot's backend so each reply's generation time (and tries) is recorded."""
    timings: list[tuple[float, int]] = []
    inner = backend.generate

    def generate(*a, **kw):
        t = time.perf_counter()
        out = inner(*a, **kw)
        timings.append((time.perf_counter() - t, getattr(backend, "last_usage", {}).get("tries", 1)))
        return out

    backend.generate = generate
    return timings


class ReplayClient:
    def __init__(self, dialogue):
        self.dialogue = dialogue
        self.turns = [t.text for t in dialogue.merged() if t.role == "client"]
        self.identity = {"client": "replay", "dialogue": dialogue.id}

    def human(self, client_turns: int) -> list[Turn]:
        """The same dialogue with its human counselor, as far as the replay went: every utterance
        before the client's next block (the counselor's answer to the last replayed turn included)."""
        from kokoro.perturb import first_client_blocks

        return first_client_blocks(self.dialogue.turns, client_turns)

    def next(self, history: list[Turn], k: int) -> str | None:
        return self.turns[k] if k < len(self.turns) else None


class ScriptClient:
    """A client who sends the lines of a file, one message per line (what `bot chat --script`
    plays; evaluation/clients holds six)."""

    def __init__(self, path: Path):
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        self.lines = [x.strip() for x in lines if x.strip()]
        self.identity = {"client": "script", "file": Path(path).name}

    def next(self, history: list[Turn], k: int) -> str | None:
        return self.lines[k] if k < len(self.lines) else None


def script_files(client: str) -> list[Path]:
    """The client scripts when ``client`` is a folder of them (each file one session), else []."""
    p = Path(client)
    return sorted(p.glob("*.txt")) if client != "replay" and p.is_dir() else []


def retime(bot: list[Turn], human: list[Turn]) -> list[Turn]:
    """The bot's session on the replayed dialogue's clock: client block k takes the time of the
    dialogue's client block k, a counselor block after it the time of the human counselor's block
    after it (the client's, where the human said nothing more). A simulated session runs in
    seconds, and the scorer reads durations and reply delays: without this, bot and human would
    differ in timing as well as in words."""
    from kokoro.perturb import blocks

    def after(bl):  # per client block: (its time, the time of the counselor block after it or None)
        out = []
        for i, b in enumerate(bl):
            if b[0].role == "client":
                nxt = bl[i + 1][0].time if i + 1 < len(bl) and bl[i + 1][0].role == "counselor" else None
                out.append((b[0].time, nxt))
        return out

    hb = blocks(human)
    clock = after(hb)
    if not clock:
        return list(bot)
    opening = hb[0][0].time if hb[0][0].role == "counselor" else clock[0][0]
    out, k = [], -1
    for b in blocks(bot):
        if b[0].role == "client":
            k = min(k + 1, len(clock) - 1)
            t = clock[k][0]
        else:
            t = opening if k < 0 else clock[k][1] or clock[k][0]
        out += [Turn(x.role, t, x.text) for x in b]
    return out


def seen_client_turns(turns) -> int:
    """Client blocks in a bot session, the closing end word not counted."""
    from bot import messages as M

    blocks = [
        t for t, prev in zip(turns, [None] + list(turns)) if t.role == "client" and (not prev or prev.role != "client")
    ]
    n = len(blocks)
    return n - 1 if turns and turns[-1].role == "client" and turns[-1].text in M.END_WORDS else n


class LlmClient:
    def __init__(
        self, model: str, lora: str | None, chat_format: str | None, n_ctx: int, threads: int, max_tokens=64, gpu=0
    ):
        from kokoro.llm import open_llama

        from .responses import _fmt

        self.llm = open_llama(model, lora_path=lora, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=gpu)
        self.fmt = _fmt(self.llm, chat_format)
        self.max_tokens, self.n_ctx = max_tokens, n_ctx
        self.identity = {"client": "llm", "model": model, "lora": lora}
        self.session = 0

    def next(self, history: list[Turn], k: int) -> str | None:
        prompt = self.fmt.render(client_sim_messages(history), add_generation_prompt=True)
        toks = prompt_tokens(self.llm, prompt)[-(self.n_ctx - self.max_tokens) :]
        out = self.llm.create_completion(
            toks,
            max_tokens=self.max_tokens,
            temperature=0.7,
            top_p=0.9,
            seed=1000 * self.session + k,  # each session its own sample
            stop=list(self.fmt.stops),
        )
        return out["choices"][0]["text"].strip() or "……"


class EndpointClient:
    """The simulated client behind an OpenAI-compatible endpoint (GPT-4o as in the paper's App. E,
    or any served model), with the same prompt as the GGUF client."""

    def __init__(self, endpoint, max_tokens: int = 64):
        self.endpoint, self.max_tokens = endpoint, max_tokens
        self.identity = {"client": "endpoint", **endpoint.identity}
        self.session = 0

    def next(self, history: list[Turn], k: int) -> str | None:
        msgs = client_sim_messages(history)
        seed = 1000 * self.session + k  # each session its own sample (and its own cache entries)
        return self.endpoint.chat(msgs, max_tokens=self.max_tokens, temperature=0.7, seed=seed) or "……"


class EndpointCounselor:
    """The counselor under test behind an OpenAI-compatible endpoint, plugged into the bot's session
    engine as its backend: the engine builds the prompt with ``kokoro.prompts`` as always; in chat
    mode it is rendered as the JSON of the messages (the ``messages`` format) and sent as
    chat-completions, in completions mode rendered in ``chat_format`` and sent as text. Greedy; a
    reply that repeats the session is asked again once at temperature 0.8, the better one kept
    (as the bot's OpenAI backend does)."""

    MESSAGES = ChatFormat("messages", "{{ messages | tojson }}", eot_token="")

    def __init__(self, endpoint, max_tokens: int = 96, chat_format: str | None = None, repetition: bool = True):
        from kokoro.chat_formats import get_format

        if endpoint.mode == "completions" and not chat_format:
            raise ValueError("a counselor endpoint in completions mode needs --counselor-chat-format (llama3|gemma)")
        self.endpoint, self.max_tokens, self.repetition = endpoint, max_tokens, repetition
        self.fmt = get_format(chat_format) if endpoint.mode == "completions" else self.MESSAGES
        self.identity = {"backend": "endpoint", **endpoint.identity, "repetition_control": repetition}
        self.last_usage: dict = {}

    def count_tokens(self, text: str) -> int:
        return len(text)  # conservative for Japanese: a token covers at least one character

    def _ask(self, prompt: str, **params) -> str:
        params = {"max_tokens": self.max_tokens, "temperature": 0.0, **params}
        if self.fmt is self.MESSAGES:
            return self.endpoint.chat(json.loads(prompt), **params)
        bos = self.fmt.bos_token
        prompt = prompt[len(bos) :] if bos and prompt.startswith(bos) else prompt
        return self.endpoint.complete(prompt, stop=list(self.fmt.stops), **params)

    def generate(self, key: str, prompt: str, avoid=(), openers=()) -> str:  # no logits to steer openers
        from kokoro.conversation import ask_again_if_repeats

        text, tries = ask_again_if_repeats(lambda o: self._ask(prompt, **o), avoid if self.repetition else ())
        self.last_usage = {"tries": tries}
        return text

    def forget(self, key: str) -> None:
        pass


def run(
    counselor: str,
    lora: str | None,
    client: str,
    scorer_kind: str,
    scorer_path: str,
    data=None,
    n: int = 5,
    max_turns: int = 20,
    min_turns: int = 10,
    out: Path | None = None,
    threads: int = 2,
    n_ctx: int = 2048,
    max_tokens: int = 96,
    client_lora: str | None = None,
    client_chat_format: str | None = None,
    n_gpu_layers: int = 0,
    repetition: bool = True,
    client_endpoint=None,
    counselor_endpoint=None,
    counselor_chat_format: str | None = None,
    skip: int = 0,
) -> dict:
    """``skip``: replay the counselor-test dialogues from this one on (a set not looked at before).
    ``client_endpoint``: an ``evaluation.endpoint.Endpoint`` playing the client (``client`` is
    then its model name); ``counselor_endpoint`` one as the counselor under test (``counselor`` is
    then its model name)."""
    from bot import messages as M
    from bot.chat import wait_settled
    from bot.emulator.client import Emulator

    from .scores import load_scorer

    dialogues = load(data)
    by = {d.id: d for d in dialogues}
    test_ids = counselor_split(dialogues, "full").test
    test = [by[i] for i in test_ids]
    scorer = load_scorer(scorer_kind, scorer_path, **({"n_gpu_layers": n_gpu_layers} if scorer_kind == "gguf" else {}))
    db = str(Path(tempfile.mkdtemp(prefix="kokoro-sim-")) / "sim.sqlite3")
    backend, environ = None, None
    if counselor_endpoint is not None:  # the engine's own backend is not built: no GGUF is opened
        backend = EndpointCounselor(counselor_endpoint, max_tokens, counselor_chat_format, repetition)
        environ = {"KOKORO_BACKEND": "openai", "KOKORO_OPENAI_URL": counselor_endpoint.url}
    emu = Emulator(
        backend=backend,
        environ=environ,
        counselor_gguf=counselor,
        counselor_lora=lora,
        db_path=db,
        quiet_gap_s=0.05,
        tick_s=0.05,
        n_threads=threads,
        n_ctx=n_ctx,
        max_tokens=max_tokens,
        n_gpu_layers=n_gpu_layers,
        scorer=None,
        repetition=repetition,
    )
    scripts = script_files(client)
    if client_endpoint is not None:
        llm_client = EndpointClient(client_endpoint)
    elif client == "replay" or scripts:
        llm_client = None
    else:
        llm_client = LlmClient(client, client_lora, client_chat_format, n_ctx, threads, gpu=n_gpu_layers)
    timings = time_generation(emu.runtime.engine.backend)
    sessions, t0 = [], time.time()
    n = len(scripts) if scripts else n  # a folder of scripts: each file once
    try:
        for s in range(n):
            if llm_client is not None:
                sim = llm_client
            elif scripts:
                sim = ScriptClient(scripts[s % len(scripts)])
            else:
                sim = ReplayClient(test[(skip + s) % len(test)])
            sim.session = s
            user = "U" + uuid.uuid4().hex
            emu.runtime.engine.store.update_user(user, consent_at=time.time())
            seen, history = 0, []
            for k in range(max_turns):
                msg = sim.next(history, k)
                if msg is None:
                    break
                ended = CLIENT_END in msg and k + 1 >= min_turns
                msg = msg.replace(CLIENT_END, "").strip() or "ありがとうございました"
                emu.text(user, msg)
                new = wait_settled(emu, user, seen)
                seen += len(new)
                sess = emu.runtime.engine.store.open_session(user) or emu.runtime.engine.store.last_closed_session(user)
                history = [Turn(r["role"], r["time"], r["text"]) for r in emu.runtime.engine.store.turns(sess["id"])]
                if ended:
                    break
            emu.text(user, M.END_WORDS[0])
            wait_settled(emu, user, seen)
            sess = emu.runtime.engine.store.last_closed_session(user)
            rows = emu.runtime.engine.store.turns(sess["id"])
            turns = [Turn(r["role"], r["time"], r["text"]) for r in rows]
            human = sim.human(seen_client_turns(turns)) if isinstance(sim, ReplayClient) else None
            if human is not None:  # scored on the replayed dialogue's clock, as the human counselor is
                turns = retime(turns, human)
            items = tuple(scorer.predict(turns))
            record = {
                "client": sim.identity,
                "turns": [{"role": t.role, "time": t.time, "text": t.text} for t in turns],
                "items": list(items),
                "total": predicted_total(items, turns)[0],
            }
            if human is not None:  # the same client turns with the human counselor, same scorer and rule
                record["human_total"] = predicted_total(scorer.predict(human), human)[0]
                record["human_turns"] = [(t.role, t.text) for t in merge_turns(human)]
            sessions.append(record)
    finally:
        emu.close()
    quality = conversation_quality(sessions)
    humans = [x["human_total"] for x in sessions if "human_total" in x]
    human_texts = human_replies([x.pop("human_turns") for x in sessions if "human_turns" in x])
    # (popped: KokoroChat's counselor text stays out of the report)
    result = {
        "n": len(sessions),
        "mean_total": statistics.fmean(x["total"] for x in sessions),
        "human_mean_total": statistics.fmean(humans) if humans else None,
        "sessions_below_human": sum(x["total"] < x["human_total"] for x in sessions if "human_total" in x),
        "ldd_counselor": lexical_diversity(
            [[t["text"] for t in x["turns"] if t["role"] == "counselor"] for x in sessions]
        ),
        "ldd_counselor_human": lexical_diversity(human_texts) if human_texts else None,
        "conversation": quality,
        "generation": {
            "replies": len(timings),
            "mean_seconds": statistics.fmean(t for t, _ in timings) if timings else None,
            "p90_seconds": sorted(t for t, _ in timings)[int(0.9 * (len(timings) - 1))] if timings else None,
            "second_try_share": sum(k > 1 for _, k in timings) / max(len(timings), 1),
        },
        "item_means": {it.key: statistics.fmean(x["items"][j] for x in sessions) for j, it in enumerate(ITEMS)},
        "mean_client_turns": statistics.fmean(sum(t["role"] == "client" for t in x["turns"]) for x in sessions),
        "settings": {
            "counselor": backend.identity if backend is not None else counselor,
            "lora": lora,
            "client": llm_client.identity if llm_client is not None else client,
            "scorer": scorer.identity.get("kind"),
            "max_turns": max_turns,
            "skip": skip,
            "n_ctx": n_ctx,
            "max_tokens": max_tokens,
            "repetition_control": repetition,
        },
        "seconds": round(time.time() - t0, 1),
        "signature": f"split:{ids_hash(test_ids)}|scorer:{scorer.identity.get('kind')}|clock:replayed-dialogue",
        "versions": library_versions(),
    }
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (out / "sessions.jsonl").write_text(
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in sessions), encoding="utf-8"
        )
        (out / "report.md").write_text(markdown(result), encoding="utf-8")
    return result


def audit_table(rows) -> list[str]:
    """What a client would notice (kokoro/session_audit.py), per counselor row."""
    out = [
        "| counselor | facts re-asked (replies) | invented people per session | sessions announcing the end | "
        "circling questions per session (max) | near-duplicates | top opener share, mean (max) | "
        "feedback ignored / given |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f, _, _ in rows:
        a = f.get("audit")
        if a:
            out.append(
                f"| {name} | {100 * a['facts_reasked_share']:.1f} % | {a['invented_per_session']:.2f} | "
                f"{a['sessions_announcing_end']} of {a['sessions']} | {a['circling_per_session']:.2f} "
                f"({a['circling_max']}) | {100 * a['near_duplicate_share']:.1f} % | "
                f"{100 * a['top_opener_share_mean']:.0f} % ({100 * a['top_opener_share_max']:.0f} %) | "
                f"{a['feedback_ignored']} / {a['feedback']} |"
            )
    return out


def markdown(r: dict) -> str:
    """The simulated sessions beside the human counselors of the same dialogues (replay)."""
    q = r["conversation"]
    rows = [("this counselor", q["counselor"], r["mean_total"], r["ldd_counselor"])]
    if "human" in q:
        rows.append(("human counselors, same dialogues", q["human"], r["human_mean_total"], r["ldd_counselor_human"]))
    s = r["settings"]
    lines = [
        f"# Simulated sessions ({r['n']}, {r['mean_client_turns']:.1f} client turns on average)",
        "",
        f"Signature: `{r['signature']}`; versions: `{json.dumps(r['versions'])}`",
        "",
        f"Counselor: `{json.dumps(s['counselor'], ensure_ascii=False)}`; client: "
        f"`{json.dumps(s['client'], ensure_ascii=False)}`; scorer: `{s['scorer']}`; repetition control: "
        f"{s['repetition_control']}.",
        "",
        "| counselor | mean predicted total | near-duplicate replies | re-asks | distinct-1 / 2 per session | "
        "mean reply length (chars) | LDD |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f, total, ldd in rows:
        lines.append(
            f"| {name} | {total:.1f} | {100 * f['near_duplicate_share']:.1f} % | {100 * f['re_ask_share']:.1f} % | "
            f"{f['dist1_per_session']:.1f} / {f['dist2_per_session']:.1f} | "
            f"{f['mean_reply_chars']:.1f} | {ldd['ldd'] if ldd else 0:.1f} |"
        )
    lines += ["", *audit_table(rows)]
    g = r["generation"]
    if g["replies"]:
        lines += [
            "",
            f"Generation: {g['replies']} replies, mean {g['mean_seconds']:.2f} s, p90 {g['p90_seconds']:.2f} s, "
            f"second tries {100 * g['second_try_share']:.0f} %.",
        ]
    lines += [
        "",
        "Predicted totals are the scorer's, not ratings (see docs/evaluation.md on what the scores can tell); "
        "the paper's simulated-client results are judged by an LLM (`evaluation judge`, Table 7).",
    ]
    return "\n".join(lines) + "\n"
