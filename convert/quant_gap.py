"""The quantization gap of merging. QLoRA trains the adapter against the 4-bit (NF4) base, but the
merge adds it to the 16/32-bit base (merging into 4-bit weights would round the adapter away), so
the merged model is not the model that was trained. This measures the gap on the held-out parity
prompts: the trained model (the base loaded in 4-bit exactly as training loaded it, plus the
adapter) against the merged model — top-1 agreement, max |logit diff| and greedy continuations.

Run it where the training ran (bitsandbytes' 4-bit layers; on CUDA when there is one). It is
reported, not a pass/fail: a gap is expected, its size is what a user needs to know."""

from __future__ import annotations

import gc
from pathlib import Path

from kokoro.chat_formats import ChatFormat

from .parity import Agreement, held_out_prompts, hf_pass, memory_check


def applies(run: dict) -> bool:
    return bool(run.get("settings", {}).get("load_in_4bit"))


def check_gap(
    hf_dir: Path,
    run_dir: Path,
    base: Path,
    run: dict,
    dialogues,
    n_prompts: int = 8,
    n_ctx: int = 512,
    greedy_tokens: int = 16,
    threads: int = 0,
) -> dict:
    import os

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from training.lm import disable_cpu_repacking

    s = run["settings"]
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    memory = memory_check(hf_dir, Path(os.devnull), cuda, 0)  # one model at a time: the larger, merged one
    torch.set_num_threads(threads or os.cpu_count() or 1)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    fmt = ChatFormat.from_dict(run["chat_format"])
    count = lambda t: len(tok(t, add_special_tokens=False).input_ids)
    prompts = held_out_prompts(fmt, dialogues, run, count, n_prompts, n_ctx - greedy_tokens - 8)
    eot = run["eot_token_id"]
    dtype = getattr(torch, s.get("compute_dtype", "bfloat16"))
    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=s.get("quant_type", "nf4"), bnb_4bit_compute_dtype=dtype
    )
    trained = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, device_map={"": dev}, quantization_config=quant)
    disable_cpu_repacking(trained)  # the layout training ran with
    trained = PeftModel.from_pretrained(trained, run_dir / "adapter").eval()
    ids = [tok(p, add_special_tokens=False).input_ids for p in prompts]
    ref = [hf_pass(trained, tok, x, dev, eot, greedy_tokens) for x in ids]  # kept: one model loaded at a time
    del trained
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    merged = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16 if cuda else torch.float32).to(dev)
    merged.eval()
    tally = Agreement()
    for x, (logits, greedy) in zip(ids, ref):
        got, got_greedy = hf_pass(merged, tok, x, dev, eot, greedy_tokens)
        tally.add(logits, got, greedy, got_greedy)
    return {
        "compared": "trained (4-bit base + adapter) vs merged",
        "quant_type": s.get("quant_type", "nf4"),
        "compute_dtype": s.get("compute_dtype"),
        **tally.figures(greedy_tokens),
        "device": dev,
        "memory": memory,
    }


def summary(gap: dict) -> list[str]:
    if "skipped" in gap:
        return ["", f"Quantization gap of merging: not measured ({gap['skipped']})."]
    return [
        "",
        "## Quantization gap of merging",
        "",
        f"The adapter was trained against the {gap['quant_type']} 4-bit base; the merge adds it to the "
        f"16/32-bit base. On {gap['prompts']} held-out prompts ({gap['positions']} positions, {gap['device']}), "
        "the trained model (4-bit base + adapter) against the merged model: top-1 agreement "
        f"{100 * gap['top1_agreement']:.1f} %, max logit diff {gap['max_abs_logit_diff']:.4f}, greedy "
        f"continuations ({gap['greedy_tokens']} tokens) identical in {100 * gap['greedy_match']:.0f} %. "
        "Reported, not a pass/fail.",
    ]
