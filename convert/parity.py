"""HF vs GGUF parity on held-out KokoroChat text: tokenization, logits, greedy continuations."""

from __future__ import annotations

import os
import random
from pathlib import Path

from kokoro.chat_formats import ChatFormat
from kokoro.dataset import Dialogue
from kokoro.generation import prompt_tokens
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


class ParityMemoryError(RuntimeError):
    """The HF model and the GGUF would not fit in memory together."""


def available_bytes(cuda: bool) -> int:
    if cuda:
        import torch

        return torch.cuda.mem_get_info()[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62  # unknown: do not refuse


def memory_check(hf_dir: Path, gguf: Path, cuda: bool, gpu_layers: int) -> dict:
    """Before loading: the HF weights (as stored ×2 when a bf16/f16 file is loaded in fp32 on CPU)
    plus the GGUF (in host memory unless its layers are offloaded) must fit what is available."""
    stored = sum(f.stat().st_size for f in Path(hf_dir).glob("*.safetensors"))
    hf_bytes = stored if cuda else stored * 2 if _stored_half(hf_dir) else stored
    gguf_bytes = Path(gguf).stat().st_size if Path(gguf).is_file() else 0
    need = hf_bytes + (0 if gpu_layers else gguf_bytes)
    have = available_bytes(cuda)
    report = {
        "hf_bytes": hf_bytes,
        "gguf_bytes": gguf_bytes,
        "available_bytes": have,
        "device": "cuda" if cuda else "cpu",
    }
    if need > have:
        raise ParityMemoryError(
            f"parity needs about {need / 2**30:.1f} GiB ({'GPU' if cuda else 'RAM'}) for the HF model and the GGUF, "
            f"{have / 2**30:.1f} GiB are free; run it where the training ran (a GPU: the HF side loads in bf16), "
            "offload the GGUF with --gpu-layers -1, or skip it with --no-parity"
        )
    return report


def _stored_half(hf_dir: Path) -> bool:
    import json

    cfg = json.loads((Path(hf_dir) / "config.json").read_text())
    return str(cfg.get("torch_dtype") or cfg.get("dtype") or "").lower() in ("bfloat16", "float16")


def hf_pass(model, tok, ids: list[int], dev: str, eot: int, greedy_tokens: int):
    """A HF model on ``ids``: (logits, positions × vocab as float32 numpy; greedy continuation)."""
    import torch

    x = torch.tensor([ids], device=dev)
    with torch.no_grad():
        logits = model(x).logits[0].float().cpu().numpy()
        greedy = model.generate(
            x, max_new_tokens=greedy_tokens, do_sample=False, eos_token_id=eot, pad_token_id=tok.pad_token_id or eot
        )[0, len(ids) :].tolist()
    return logits, greedy


class Agreement:
    """One model against a reference, prompt by prompt: top-1 agreement over all positions, max
    |logit diff| and the share of identical greedy continuations."""

    def __init__(self):
        self.prompts = self.positions = self.agree = self.greedy_same = 0
        self.max_diff = 0.0

    def add(self, ref, got, greedy_ref: list[int], greedy_got: list[int]) -> None:
        import numpy as np

        self.prompts += 1
        self.positions += len(ref)
        self.agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        self.max_diff = max(self.max_diff, float(np.abs(ref - got).max()))
        self.greedy_same += int(greedy_ref == greedy_got)

    def figures(self, greedy_tokens: int) -> dict:
        return {
            "prompts": self.prompts,
            "positions": self.positions,
            "top1_agreement": self.agree / max(self.positions, 1),
            "max_abs_logit_diff": self.max_diff,
            "greedy_match": self.greedy_same / max(self.prompts, 1),
            "greedy_tokens": greedy_tokens,
        }


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
    gpu_layers: int = 0,
    threads: int = 0,
) -> dict:
    """``gpu_layers`` offloads the GGUF; the HF side runs in bf16 on CUDA when there is one, in
    fp32 on ``threads`` CPU threads (default: all) otherwise."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kokoro.llm import open_llama

    cuda = torch.cuda.is_available()
    model_path = base_gguf if lora else gguf
    memory = memory_check(hf_dir, model_path, cuda, gpu_layers)
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    fmt = ChatFormat.from_dict(run["chat_format"])
    tok = AutoTokenizer.from_pretrained(hf_dir)
    dev = "cuda" if cuda else "cpu"
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16 if cuda else torch.float32).to(dev)
    hf.eval()
    llm = open_llama(
        model_path,
        lora_path=str(lora) if lora else None,
        n_ctx=n_ctx,
        logits_all=True,
        n_threads=threads,
        n_batch=n_ctx,
        n_gpu_layers=gpu_layers,
    )
    count = lambda s: len(tok(s, add_special_tokens=False).input_ids)
    prompts = held_out_prompts(fmt, dialogues, run, count, n_prompts, n_ctx - greedy_tokens - 8)
    texts = [t.text for d in dialogues[:20] for t in d.turns] + prompts
    mismatches, examples = 0, []
    for t in texts:
        a = tok(t, add_special_tokens=False).input_ids
        b = prompt_tokens(llm, t)
        if a != b:
            mismatches += 1
            if len(examples) < 3:
                examples.append({"chars": len(t), "hf_tokens": len(a), "gguf_tokens": len(b)})
    eot = run["eot_token_id"]
    tally = Agreement()
    for p in prompts:
        ids = tok(p, add_special_tokens=False).input_ids
        ref, g_hf = hf_pass(hf, tok, ids, dev, eot, greedy_tokens)
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)], dtype=np.float32)
        g_ll = []
        for t in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            g_ll.append(t)
            if t == eot or len(g_ll) >= greedy_tokens:
                break
        tally.add(ref, got, g_hf, g_ll)
    return {
        "tokenization_texts": len(texts),
        "tokenization_mismatches": mismatches,
        "mismatch_examples": examples,
        **tally.figures(greedy_tokens),
        "hf_device": dev,
        "gpu_layers": gpu_layers,
        "threads": threads,
        "memory": memory,
    }
