"""`python -m evaluation judge`: the paper's Table 7 — simulated dialogues (``evaluation simulate``'s
sessions.jsonl, one file per counselor model) judged on Comprehensiveness, Professionalism,
Authenticity and Safety, 0–5, by an LLM: an OpenAI-compatible endpoint (GPT-4o as in the paper;
strict parsing, asked again on a malformed answer) or a GGUF under a grammar that admits only the
four integers. The prompt lives in ``kokoro.prompts`` (``judge_messages``)."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

from kokoro.dataset import Turn
from kokoro.generation import prompt_tokens
from kokoro.prompts import JUDGE_DIMENSIONS, judge_grammar, judge_messages, parse_judgement

PAPER_TABLE7 = {
    "CPsyCounX": [2.64, 1.78, 2.70, 3.90],
    "EmoLLM": [3.58, 3.02, 3.92, 4.74],
    "Kokoro-High": [3.98, 3.38, 4.50, 4.98],
}
SHORT = ["Comp.", "Prof.", "Auth.", "Safe."]
KEYS = [k for k, _, _ in JUDGE_DIMENSIONS]


def prompt_hash() -> str:
    probe = judge_messages([Turn("client", "", "{dialogue}")])
    return hashlib.sha256(json.dumps(probe, ensure_ascii=False).encode()).hexdigest()[:12]


class EndpointJudge:
    def __init__(self, endpoint, tries: int = 3):
        self.endpoint, self.tries = endpoint, tries
        self.identity = {"judge": "endpoint", **endpoint.identity}

    def judge_many(self, dialogues: list[list[Turn]]) -> list[dict]:
        from .endpoint import ask_parsed

        fmt = {"type": "json_object"}
        bodies = [
            {"messages": judge_messages(t), "max_tokens": 80, "response_format": fmt, "temperature": 0.0}
            for t in dialogues
        ]
        return ask_parsed(self.endpoint, bodies, parse_judgement, self.tries)


class GgufJudge:
    def __init__(self, model: str, chat_format: str | None = None, n_ctx: int = 8192, threads: int = 0, gpu=0):
        from llama_cpp import LlamaGrammar

        from kokoro.llm import open_llama

        from .responses import _fmt

        self.llm = open_llama(model, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=gpu)
        self.fmt = _fmt(self.llm, chat_format)
        self.grammar = LlamaGrammar.from_string(judge_grammar(), verbose=False)
        self.n_ctx = n_ctx
        self.identity = {"judge": "gguf", "model": model, "chat_format": self.fmt.name}

    def judge_many(self, dialogues: list[list[Turn]]) -> list[dict]:
        out = []
        for turns in dialogues:
            prompt = self.fmt.render(judge_messages(turns), add_generation_prompt=True)
            toks = prompt_tokens(self.llm, prompt)[-(self.n_ctx - 96) :]
            res = self.llm.create_completion(toks, max_tokens=96, temperature=0.0, grammar=self.grammar)
            out.append(parse_judgement(res["choices"][0]["text"]))
        return out


def read_sessions(path: Path) -> list[list[Turn]]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    try:
        return [[Turn(t["role"], "", t["text"]) for t in r["turns"]] for r in rows]
    except (KeyError, TypeError):
        raise ValueError(
            f"{path}: not a sessions.jsonl written by `evaluation simulate` (records need 'turns')"
        ) from None


def model_name(path: Path) -> str:
    metrics = path.with_name("metrics.json")
    if metrics.is_file():
        s = json.loads(metrics.read_text(encoding="utf-8")).get("settings", {})
        return Path(str(s.get("counselor", path.parent.name))).name
    return path.parent.name


def run(files: list[Path], judge, names: list[str] | None = None, out: Path | None = None) -> dict:
    rows = {}
    for k, f in enumerate(files):
        name = names[k] if names and k < len(names) else model_name(f)
        scores = judge.judge_many(read_sessions(f))
        rows[name] = {
            "n": len(scores),
            "mean": {d: statistics.fmean(s[d] for s in scores) for d in KEYS},
            "std": {d: statistics.pstdev([s[d] for s in scores]) for d in KEYS},
            "sessions": str(f),
        }
    result = {
        "models": rows,
        "paper": PAPER_TABLE7,
        "signature": f"judge:{json.dumps(judge.identity, sort_keys=True)}|prompt:{prompt_hash()}|scale:0-5",
    }
    if hasattr(judge, "endpoint"):
        result["requests"] = dict(judge.endpoint.stats)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (out / "report.md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(r: dict) -> str:
    lines = [
        "# Simulated dialogues judged by an LLM (the paper's Table 7 layout, 0–5)",
        "",
        f"Signature: `{r['signature']}`",
        "",
        "| model | n | " + " | ".join(SHORT) + " |",
        "| --- | --- |" + " --- |" * 4,
    ]
    for name, m in r["models"].items():
        cells = [f"{m['mean'][d]:.2f} ± {m['std'][d]:.2f}" for d in KEYS]
        lines.append(f"| {name} | {m['n']} | " + " | ".join(cells) + " |")
    for name, vals in r["paper"].items():
        lines.append(
            f"| {name} (paper, GPT-4o judge, 50 dialogues) | 50 | " + " | ".join(f"{v:.2f}" for v in vals) + " |"
        )
    return "\n".join(lines) + "\n"
