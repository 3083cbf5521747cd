"""Tokenized training examples from kokoro's prompt formats, with the label mask.

input_ids = tokens(prompt) + tokens(completion); labels are -100 on the prompt and the
completion's tokens (target + end-of-turn) elsewhere. The rendered text already carries BOS,
so nothing is added by the tokenizer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from kokoro.chat_formats import ChatFormat
from kokoro.dataset import Dialogue
from kokoro.prompts import (
    COUNSELOR_SYSTEM,
    SCORER_SYSTEM,
    ContextTooShort,
    counselor_example,
    counselor_targets,
    scorer_example,
)

IGNORE = -100


def token_counter(tok):
    return lambda s: len(tok(s, add_special_tokens=False).input_ids)


def encode(tok, prompt: str, completion: str) -> dict:
    p = tok(prompt, add_special_tokens=False).input_ids
    c = tok(completion, add_special_tokens=False).input_ids
    return {"input_ids": p + c, "labels": [IGNORE] * len(p) + c}


@dataclass
class Source:
    dialogue: Dialogue
    turn: int | None  # index into merged turns (counselor) or None (scorer)


class ExampleSet:
    """A lazily tokenized list of examples (torch Dataset protocol: __len__/__getitem__)."""

    def __init__(
        self,
        sources: list[Source],
        tok,
        fmt: ChatFormat,
        task: str,
        max_seq_len: int,
        system: str | None,
        history_turns: int = 0,
    ):
        self.sources, self.tok, self.fmt, self.task = sources, tok, fmt, task
        self.max_seq_len, self.history_turns = max_seq_len, history_turns
        self.system = system if system is not None else (COUNSELOR_SYSTEM if task == "counselor" else SCORER_SYSTEM)
        self.count = token_counter(tok)

    def __len__(self):
        return len(self.sources)

    def example(self, i: int):
        s = self.sources[i]
        if self.task == "scorer":
            return scorer_example(self.fmt, s.dialogue, self.system, self.max_seq_len, self.count)
        merged = s.dialogue.merged()
        return counselor_example(
            self.fmt,
            merged[: s.turn],
            merged[s.turn].text,
            self.system,
            self.max_seq_len,
            self.count,
            max_turns=self.history_turns,
        )

    def __getitem__(self, i: int) -> dict:
        ex = self.example(i)
        return encode(self.tok, ex.prompt, ex.completion)


def sources_for(
    task: str,
    dialogues: Sequence[Dialogue],
    ids: Sequence[str],
    tok=None,
    max_target_tokens: int = 0,
    limit: int = 0,
    seed: int = 0,
) -> list[Source]:
    """Examples of the given dialogues: one per merged counselor turn, or one per dialogue.
    Counselor targets longer than ``max_target_tokens`` are skipped (never cut)."""
    by = {d.id: d for d in dialogues}
    out: list[Source] = []
    for i in ids:
        d = by[i]
        if task == "scorer":
            out.append(Source(d, None))
            continue
        for k, (history, turn) in enumerate(counselor_targets(d)):
            out.append(Source(d, len(history)))
    if task == "counselor" and max_target_tokens and tok is not None:
        count = token_counter(tok)
        rng = random.Random(seed)
        if limit:  # sample generously first so the length filter stays cheap
            rng.shuffle(out)
            out = out[: limit * 3]
        out = [s for s in out if count(s.dialogue.merged()[s.turn].text) <= max_target_tokens]
    if limit and len(out) > limit:
        out = random.Random(seed).sample(out, limit)
    return out


def check_examples(ds: ExampleSet, name: str) -> dict:
    """Render every example before the first step; those that cannot fit the context are dropped
    from ``ds`` and counted, so no run (on any rank: every rank drops the same ones) stops midway on
    one example. Raises ContextTooShort when none fits."""
    kept, skipped, first = [], [], None
    for i, src in enumerate(ds.sources):
        try:
            ds.example(i)
            kept.append(src)
        except ContextTooShort as e:
            skipped.append({"dialogue": src.dialogue.id, "turn": src.turn})
            first = first or str(e)
    if ds.sources and not kept:
        raise ContextTooShort(f"no {name} example fits: {first} (max_seq_len={ds.max_seq_len})")
    ds.sources = kept
    return {"checked": len(kept) + len(skipped), "skipped": len(skipped), "skipped_examples": skipped[:20]}


def collate_left(batch: list[dict], pad_id: int) -> dict:
    """Left-pad so every target sits at the end; ``logits_to_keep`` covers the longest completion."""
    import torch

    L = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), L), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), L), dtype=torch.long)
    keep = 1
    for r, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[r, L - n :] = torch.tensor(b["input_ids"])
        labels[r, L - n :] = torch.tensor(b["labels"])
        mask[r, L - n :] = 1
        n_target = sum(1 for x in b["labels"] if x != IGNORE)
        keep = max(keep, n_target + 1)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": pos,
        "labels": labels,
        "logits_to_keep": min(keep, L),
    }
