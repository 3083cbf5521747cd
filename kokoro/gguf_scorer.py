"""A scorer GGUF (fine-tuned with ``python -m training scorer``) run through llama.cpp with a
grammar that only admits the 20 items as integers 0–5, in order — llama-cpp-python ignores
JSON-schema minimum/maximum, so the range is enforced by the grammar itself."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .chat_formats import from_gguf
from .dataset import Turn
from .generation import prompt_tokens
from .items import ITEMS
from .prompts import SCORER_SYSTEM, parse_scores, scorer_prompt, scores_json


def scores_grammar() -> str:
    """GBNF for exactly the JSON that ``prompts.scores_json`` writes."""
    parts = ' ", " '.join(f'"\\"{it.key}\\": " d' for it in ITEMS)
    return f'root ::= "{{" {parts} "}}"\nd ::= [0-5]\n'


class GgufScorer:
    def __init__(
        self,
        model: str | Path,
        n_ctx: int = 8192,
        n_threads: int = 0,
        n_gpu_layers: int = 0,
        chat_format: str | None = None,
        system: str | None = None,
        flash_attn: str = "auto",
    ):
        from llama_cpp import LlamaGrammar

        from .llm import open_llama

        self.llm = open_llama(model, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers, flash_attn=flash_attn)
        self.fmt = from_gguf(self.llm, chat_format or "llama3")
        self.grammar = LlamaGrammar.from_string(scores_grammar(), verbose=False)
        self.system = system or SCORER_SYSTEM
        self.n_ctx = n_ctx
        # under the grammar the model may spell the JSON in short tokens: budget one token per character
        self.max_out = len(scores_json([0] * len(ITEMS))) + 8
        self.identity = {
            "kind": "kokoro-gguf-scorer",
            "model": str(model),
            "chat_format": self.fmt.name,
            "items": [it.key for it in ITEMS],
        }

    def count(self, text: str) -> int:
        return len(prompt_tokens(self.llm, text))

    def predict(self, turns: Sequence[Turn]) -> tuple[int, ...]:
        prompt, _ = scorer_prompt(
            self.fmt, turns, self.system, max_tokens=self.n_ctx, count_tokens=self.count, reserve=self.max_out
        )
        tokens = prompt_tokens(self.llm, prompt)
        out = self.llm.create_completion(tokens, max_tokens=self.max_out, temperature=0.0, grammar=self.grammar)
        return parse_scores(out["choices"][0]["text"])
