"""`python -m evaluation responses`: the next counselor turn for every merged counselor turn of
the 118 test dialogues (4,742), generated greedily from the gold history by a GGUF, scored with
BLEU/ROUGE/Distinct beside a retrieval baseline and the paper's Table 4.

Consecutive turns of a dialogue reuse the KV prefix (one llama.cpp context walks a dialogue; the
history window only moves in steps, as in the bot); the report counts prompt tokens evaluated
against a naive loop that evaluates every prompt from scratch."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kokoro.chat_formats import ChatFormat, TemplateError, from_gguf, get_format
from kokoro.dataset import load
from kokoro.generation import prompt_tokens, token_counter
from kokoro.prompts import COUNSELOR_SYSTEM, counselor_targets
from kokoro.splits import counselor_split, ids_hash

from .metrics import reply_metrics, signature

PAPER_TABLE4 = {
    "Llama-3.1": [17.32, 9.13, 4.77, 2.25, 23.81, 7.37, 16.96, 1.04, 6.86],
    "GPT-4o": [21.77, 11.72, 6.32, 3.17, 28.67, 9.19, 19.82, 1.19, 6.90],
    "Kokoro-Low": [25.39, 15.30, 8.69, 5.39, 33.38, 14.05, 27.28, 2.42, 12.98],
    "Kokoro-High": [27.03, 16.45, 9.57, 6.00, 34.64, 14.72, 28.00, 2.33, 13.08],
    "Kokoro-Full": [25.69, 15.65, 9.23, 5.83, 34.02, 14.60, 28.10, 2.48, 13.24],
}
COLUMNS = ["bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougeL", "dist1", "dist2"]


def _fmt(llm, name: str | None) -> ChatFormat:
    try:
        return get_format(name) if name else from_gguf(llm)
    except TemplateError as e:
        raise ValueError(str(e)) from None


def decoded_tokens(llm) -> int:
    """Tokens llama.cpp itself has decoded in this context (its perf counters: prompt batches and
    single steps), so prefix reuse is measured from llama.cpp's work, not computed by us."""
    import llama_cpp

    d = llama_cpp.llama_perf_context(llm._ctx.ctx)
    return d.n_p_eval + d.n_eval


def retrieval_baseline(train_dialogues, queries: list[str]) -> list[str]:
    """The counselor reply that followed the most similar training context (last client turn,
    char 1–3-gram TF-IDF cosine)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    ctx, replies = [], []
    for d in train_dialogues:
        for hist, turn in counselor_targets(d):
            if hist and hist[-1].role == "client":
                ctx.append(hist[-1].text)
                replies.append(turn.text)
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, dtype=np.float32)
    X = vec.fit_transform(ctx)
    Q = vec.transform(queries)
    out = []
    for i in range(0, Q.shape[0], 256):
        sims = (Q[i : i + 256] @ X.T).toarray()
        out += [replies[j] for j in sims.argmax(1)]
    return out


def retrieval_replies(jobs, train_dialogues) -> list[str]:
    """The retrieval baseline's reply for each (dialogue, merged-turn index) job, from the client
    turn before it."""
    last = [next((t.text for t in reversed(d.merged()[:i]) if t.role == "client"), "") for d, i in jobs]
    return retrieval_baseline(train_dialogues, last)


def evaluate(
    model: str, lora: str | None = None, data=None, limit: int = 0, out: Path | None = None, **generation
) -> dict:
    """The test set's replies by a GGUF, scored and reported; ``generation``: ``generate``'s
    settings (n_ctx, max_tokens, …, whose ``repeat_penalty`` and ``repetition`` default to what the
    bot serves)."""
    split, by, jobs = test_jobs(data, limit)
    progress_file = out / "progress.jsonl" if out else None
    hyps, settings, extra = generate(jobs, model, lora, progress_file=progress_file, **generation)
    result = report(jobs, hyps, split, by, {**settings, "limit": limit}, extra, out)
    if progress_file:  # the report folder now holds every reply (replies.jsonl)
        progress_file.unlink(missing_ok=True)
    return result


def generate(
    jobs,
    model: str,
    lora: str | None = None,
    n_ctx: int = 4096,
    max_tokens: int = 128,
    history_turns: int = 0,
    chat_format: str | None = None,
    threads: int = 0,
    system: str | None = None,
    progress: bool = True,
    n_gpu_layers: int = 0,
    repeat_penalty: float = 1.3,
    repetition: bool = True,
    progress_file: Path | None = None,
) -> tuple[list[str], dict, dict]:
    """The next counselor turn of each (dialogue, merged-turn index) job, by a GGUF: (replies,
    settings, figures). Jobs of one dialogue in order walk one llama.cpp context (prefix reuse).
    With ``progress_file``, each finished dialogue is appended to it as it ends, and a run
    interrupted by anything (kill -9 included) resumes from it with the same settings, generating
    only the dialogues it had not finished (greedy, each from a fresh context: the same replies)."""
    from tqdm import tqdm

    from kokoro.llm import open_llama

    t0 = time.time()
    llm = open_llama(model, lora_path=lora, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=n_gpu_layers)
    fmt = _fmt(llm, chat_format)
    settings = {
        "model": model,
        "lora": lora,
        "n_ctx": n_ctx,
        "max_tokens": max_tokens,
        "greedy": True,
        "repeat_penalty": repeat_penalty,
        "repetition_control": repetition,
        "session_rules": repetition,  # kokoro.memory, as the bot serves them
        "history_turns": history_turns,
        "chat_format": fmt.name,
    }
    system = system or COUNSELOR_SYSTEM
    identity = settings | {"system": system, "bytes": [Path(f).stat().st_size for f in (model, lora) if f]}
    done = _resume(progress_file, identity) if progress_file else {}
    count = token_counter(llm)
    opts = {"system": system, "max_tokens": max_tokens, "history_turns": history_turns, "n_ctx": n_ctx}
    opts |= {"repeat_penalty": repeat_penalty, "repetition": repetition}
    hyps: list[str] = []
    figures = {"evaluated": 0, "naive": 0, "tries": 0, "cut": 0}
    resumed, resumed_seconds = 0, 0.0
    bar = tqdm(total=len(jobs), desc="generating", disable=not progress)
    for d, turns in _by_dialogue(jobs):
        rec = done.get(d.id)
        if rec is None or rec["turns"] != turns:
            t1 = time.time()
            rec = _dialogue(llm, fmt, d, turns, count, opts)
            rec["seconds"] = round(time.time() - t1, 2)
            if progress_file:
                with progress_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            resumed, resumed_seconds = resumed + 1, resumed_seconds + rec["seconds"]
        hyps += rec["replies"]
        for k in figures:
            figures[k] += rec[k]
        bar.update(len(turns))
    bar.close()
    extra = {
        "prompt_tokens_evaluated": figures["evaluated"],
        "prompt_tokens_naive": figures["naive"],
        "evaluated_over_naive": figures["evaluated"] / max(figures["naive"], 1),
        "second_tries": figures["tries"],
        "cut_at_max_tokens": figures["cut"],
        "seconds_generation": round(time.time() - t0 + resumed_seconds, 1),
        "resumed_dialogues": resumed,
    }
    return hyps, settings, extra


class ProgressMismatch(ValueError):
    """The report folder holds an interrupted run's progress made with other settings."""


def _resume(path: Path, identity: dict) -> dict[str, dict]:
    """Dialogues an interrupted run finished, by id, from its progress file (whose first line is
    the run's settings); a last line cut short by a kill is dropped, and the file rewritten to
    what was read. A new file starts with ``identity``."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    try:
        head = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:  # killed while the first line was written: nothing was done yet
        head, lines = None, []
    if head is not None and head != {"settings": identity}:
        raise ProgressMismatch(
            f"{path} holds an interrupted run with other settings ({head.get('settings')}); "
            "rerun with those settings to resume it, or give another --out (or delete that file) to start afresh"
        )
    done = {}
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break
        done[rec["dialogue"]] = rec
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [json.dumps(x, ensure_ascii=False) for x in [{"settings": identity}, *done.values()]]
    path.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    return done


def _by_dialogue(jobs):
    """(dialogue, [merged-turn indices]) in job order, one entry per run of a dialogue's jobs."""
    out = []
    for d, i in jobs:
        if out and out[-1][0].id == d.id:
            out[-1][1].append(i)
        else:
            out.append((d, [i]))
    return out


def _dialogue(llm, fmt, d, turns, count, opts: dict) -> dict:
    """One dialogue's replies from a fresh context, with the figures behind them. The turn is the
    bot's (kokoro.generation): its window rule and, with the served controls on, its repetition
    control and session-memory rules; with them off, one plain greedy draft."""
    from kokoro.generation import next_turn, window
    from kokoro.llm import reply

    merged = d.merged()
    llm.reset()
    rec = {"dialogue": d.id, "turns": turns, "replies": [], "evaluated": 0, "naive": 0, "tries": 0, "cut": 0}
    start, budget = 0, opts["n_ctx"] - opts["max_tokens"]
    kw = dict(system=opts["system"], count_tokens=count, max_turns=opts["history_turns"])
    decoding = {"max_tokens": opts["max_tokens"], "temperature": 0.0, "repeat_penalty": opts["repeat_penalty"]}
    for i in turns:
        prompt, start = window(fmt, merged[:i], budget=budget, start=start, **kw)
        toks = prompt_tokens(llm, prompt)
        before = decoded_tokens(llm)
        rec["naive"] += len(toks)
        infos = []

        def generate(avoid, openers=()):
            text, info = reply(llm, toks, fmt.stops, decoding, avoid, openers)
            infos.append(info)
            return text

        if opts["repetition"]:
            text, _ = next_turn(generate, [(t.role, t.text) for t in merged[:i]])
        else:
            text = generate([])
        info = infos[-1]
        rec["tries"] += info["tries"] - 1
        rec["cut"] += info["finish"] == "length"
        # what llama.cpp decoded, less the generated tokens (the last sampled one is never decoded)
        rec["evaluated"] += decoded_tokens(llm) - before - info["generated"]
        rec["replies"].append(text)
    return rec


def test_jobs(data, limit: int = 0):
    """(split, dialogues by id, [(dialogue, index of a merged counselor turn)]) of the test set."""
    dialogues = load(data)
    by = {d.id: d for d in dialogues}
    split = counselor_split(dialogues, "full")
    jobs = [(by[x], i) for x in split.test for i, t in enumerate(by[x].merged()) if t.role == "counselor"]
    return split, by, jobs[: limit or None]


def report(jobs, hyps, split, by, settings: dict, extra: dict, out: Path | None, endpoint: dict | None = None) -> dict:
    """Score replies against gold beside the retrieval baseline; write the report folder."""
    refs = [d.merged()[i].text for d, i in jobs]
    sig = signature(ids_hash(split.test))
    if endpoint:
        sig += f"|endpoint:{endpoint['endpoint']}|model:{endpoint['model']}|mode:{endpoint['mode']}"
    result = {
        "model": reply_metrics(hyps, refs),
        "retrieval": reply_metrics(retrieval_replies(jobs, [by[x] for x in split.train]), refs),
        "mean_chars": {"model": _mean_len(hyps), "gold": _mean_len(refs)},
        "empty_replies": sum(not h.strip() for h in hyps),
        "paper": PAPER_TABLE4,
        "n": len(jobs),
        **extra,
        "signature": sig,
        "split": {"test_ids": list(split.test)},
        "settings": settings,
    }
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (out / "replies.jsonl").write_text(
            "".join(
                json.dumps({"dialogue": d.id, "turn": i, "gold": r, "model": h}, ensure_ascii=False) + "\n"
                for (d, i), h, r in zip(jobs, hyps, refs)
            ),
            encoding="utf-8",
        )
        (out / "report.md").write_text(markdown(result), encoding="utf-8")
    return result


def _mean_len(texts) -> float:
    return round(sum(map(len, texts)) / max(len(texts), 1), 1)


def markdown(r: dict) -> str:
    head = "| model | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-1 | ROUGE-2 | ROUGE-L | Dist-1 | Dist-2 |"
    lines = [
        f"# Reply generation on the test set ({r['n']} counselor turns)",
        "",
        f"Signature: `{r['signature']}`",
        "",
        head,
        "|" + " --- |" * 10,
    ]
    for name, m in (("this model", r["model"]), ("retrieval baseline", r["retrieval"])):
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.2f}" for c in COLUMNS) + " |")
    for name, vals in r["paper"].items():
        lines.append(f"| {name} (paper, its tokenizer) | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    lines += [
        "",
        f"Mean reply length: {r['mean_chars']['model']} characters (gold {r['mean_chars']['gold']}); "
        f"{r['empty_replies']} empty.",
    ]
    if "cut_at_max_tokens" in r:
        lines.append(f"Replies cut at max_tokens (no end of turn): {r['cut_at_max_tokens']} of {r['n']}.")
    if "prompt_tokens_naive" in r:
        lines += [
            "",
            f"Prompt tokens evaluated: {r['prompt_tokens_evaluated']:,} vs {r['prompt_tokens_naive']:,} for a naive "
            f"loop ({r['evaluated_over_naive']:.3f}).",
        ]
    if "requests" in r:
        lines += ["", f"Requests: {r['requests']} sent, {r['cached']} answered from the cache, {r['retries']} retried."]
    return "\n".join(lines) + "\n"


def evaluate_endpoint(
    endpoint,
    data=None,
    limit: int = 0,
    out: Path | None = None,
    max_tokens: int = 128,
    history_turns: int = 0,
    chat_format: str | None = None,
    system: str | None = None,
    repetition: bool = True,
) -> dict:
    """``evaluate`` for a model behind an OpenAI-compatible endpoint (``evaluation.endpoint``)."""
    split, by, jobs = test_jobs(data, limit)
    hyps, settings, extra = generate_endpoint(
        endpoint, jobs, max_tokens, history_turns, chat_format, system, repetition
    )
    return report(jobs, hyps, split, by, {**settings, "limit": limit}, extra, out, endpoint.identity)


def generate_endpoint(
    endpoint,
    jobs,
    max_tokens: int = 128,
    history_turns: int = 0,
    chat_format: str | None = None,
    system: str | None = None,
    repetition: bool = True,
) -> tuple[list[str], dict, dict]:
    """``generate`` by a model behind an endpoint: chat mode sends
    ``kokoro.prompts.counselor_messages``; completions mode the prompt rendered in
    ``chat_format``. Greedy; a reply that repeats the dialogue's earlier counselor turns is asked
    again once with ``kokoro.conversation.second_try``'s sampling (the bot's OpenAI backend does the same), the
    better one kept."""
    from kokoro.conversation import choose, repeats, second_try
    from kokoro.prompts import counselor_messages

    t0 = time.time()
    system = system or COUNSELOR_SYSTEM
    fmt = get_format(chat_format) if endpoint.mode == "completions" else None
    if endpoint.mode == "completions" and not chat_format:
        raise ValueError("an endpoint in completions mode needs --chat-format (llama3|gemma) to render the prompt")

    def body(d, i, extra=None):
        history = d.merged()[:i][-history_turns:] if history_turns else d.merged()[:i]
        msgs = counselor_messages(history, system, cut=len(history) < i)
        params = {"max_tokens": max_tokens, "temperature": 0.0, **(extra or {})}
        if fmt is None:
            return {"messages": msgs, **params}
        prompt = fmt.render(msgs, add_generation_prompt=True)
        bos = fmt.bos_token
        return {
            "prompt": prompt[len(bos) :] if bos and prompt.startswith(bos) else prompt,
            "stop": list(fmt.stops),
        } | params

    said = [[t.text for t in d.merged()[:i] if t.role == "counselor"] if repetition else [] for d, i in jobs]
    hyps = [a["text"] for a in endpoint.map([body(d, i) for d, i in jobs])]
    again = [k for k, h in enumerate(hyps) if said[k] and repeats(h, said[k])]
    seconds = endpoint.map([body(*jobs[k], second_try(said[k])) for k in again])
    for k, a in zip(again, seconds):
        hyps[k] = choose([a["text"], hyps[k]], said[k])
    settings = {
        **endpoint.identity,
        "max_tokens": max_tokens,
        "greedy": True,
        "repetition_control": repetition,
        "session_rules": repetition,  # kokoro.memory, as the bot serves them
        "history_turns": history_turns,
        "chat_format": chat_format,
    }
    extra = {**endpoint.stats, "second_tries": len(again), "seconds_generation": round(time.time() - t0, 1)}
    return hyps, settings, extra
