"""HF vs GGUF parity on held-out KokoroChat text: tokenization, logits, greedy continuations."""

from __future__ import annotations

import random
from pathlib import Path

from kokoro.chat_formats import ChatFormat
from kokoro.dataset import Dialogue
from kokoro.prompts import counselor_prompt

DEFAULT_MIN_TOP1 = {
    "f32": 0.99,
    "f16": 0.99,
    "bf16": 0.99,
    "q8_0": 0.90,
    "q6_k": 0.85,
    "q5_k_m": 0.80,
    "lora_base": 0.75,
    "q5_0": 0.80,
    "q4_k_m": 0.75,
    "q4_0": 0.70,
}


def held_out_prompts(
    fmt: ChatFormat, dialogues: list[Dialogue], run: dict, count, n: int, max_tokens: int, seed: int = 0
) -> list[str]:
    rng = random.Random(seed)
    settings = run.get("settings", {})
    out = []
    for d in dialogues:
        if len(out) >= n:
            break
        merged = d.merged()
        targets = [i for i, t in enumerate(merged) if t.role == "counselor" and i > 0]
        i = rng.choice(targets)
        system = settings.get("system_prompt") or _default_system(run)
        text, _ = counselor_prompt(
            fmt,
            merged[:i],
            system,
            max_tokens=max_tokens,
            count_tokens=count,
            max_turns=settings.get("history_turns", 0),
        )
        out.append(text)
    return out


def _default_system(run: dict):
    from kokoro.prompts import COUNSELOR_SYSTEM, SCORER_SYSTEM

    return SCORER_SYSTEM if run.get("task") == "scorer" else COUNSELOR_SYSTEM


def check(
    hf_dir: Path,
    gguf: Path,
    run: dict,
    dialogues: list[Dialogue],
    n_prompts: int = 8,
    n_ctx: int = 512,
    greedy_tokens: int = 16,
    lora: Path | None = None,
    base_gguf: Path | None = None,
) -> dict:
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    fmt = ChatFormat.from_dict(run["chat_format"])
    tok = AutoTokenizer.from_pretrained(hf_dir)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    hf.eval()
    model_path = base_gguf if lora else gguf
    llm = Llama(
        model_path=str(model_path),
        lora_path=str(lora) if lora else None,
        n_ctx=n_ctx,
        logits_all=True,
        n_threads=1,
        n_batch=n_ctx,
        verbose=False,
        seed=0,
    )
    count = lambda s: len(tok(s, add_special_tokens=False).input_ids)
    prompts = held_out_prompts(fmt, dialogues, run, count, n_prompts, n_ctx - greedy_tokens - 8)
    texts = [t.text for d in dialogues[:20] for t in d.turns] + prompts
    mismatches, examples = 0, []
    for t in texts:
        a = tok(t, add_special_tokens=False).input_ids
        b = llm.tokenize(t.encode("utf-8"), add_bos=False, special=True)
        if a != b:
            mismatches += 1
            if len(examples) < 3:
                examples.append({"chars": len(t), "hf_tokens": len(a), "gguf_tokens": len(b)})
    agree = total = 0
    max_diff = 0.0
    greedy_same = 0
    eot = run["eot_token_id"]
    for p in prompts:
        ids = tok(p, add_special_tokens=False).input_ids
        with torch.no_grad():
            ref = hf(torch.tensor([ids])).logits[0].float().numpy()
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)], dtype=np.float32)
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += len(ids)
        max_diff = max(max_diff, float(np.abs(ref - got).max()))
        with torch.no_grad():
            g_hf = hf.generate(
                torch.tensor([ids]),
                max_new_tokens=greedy_tokens,
                do_sample=False,
                eos_token_id=eot,
                pad_token_id=tok.pad_token_id or eot,
            )[0, len(ids) :].tolist()
        g_ll = []
        for t in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            g_ll.append(t)
            if t == eot or len(g_ll) >= greedy_tokens:
                break
        greedy_same += int(g_hf == g_ll)
    return {
        "tokenization_texts": len(texts),
        "tokenization_mismatches": mismatches,
        "mismatch_examples": examples,
        "prompts": len(prompts),
        "positions": total,
        "top1_agreement": agree / max(total, 1),
        "max_abs_logit_diff": max_diff,
        "greedy_match": greedy_same / max(len(prompts), 1),
        "greedy_tokens": greedy_tokens,
    }
