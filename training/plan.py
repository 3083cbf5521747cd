"""`python -m training … --plan`: GPU memory of a run before any weights load.

The base's config.json is instantiated on the meta device (no memory, any size), LoRA applied as
training applies it, and one forward pass of the preset's per-device batch × sequence length is
*executed on meta tensors* with a saved-tensors hook: the activations autograd would keep are
counted exactly for this architecture and these LoRA targets, not from a rule of thumb.

* weights: 4-bit linears at ½ byte per weight plus one fp32 absmax per 64 (bitsandbytes NF4, no
  double quantization); what ``prepare_model_for_kbit_training`` leaves unquantized (embeddings,
  head, norms) in fp32; without 4-bit, everything in the compute dtype;
* LoRA parameters, their gradients and AdamW's two moments, all fp32;
* activations without checkpointing (everything saved for backward), and with checkpointing
  (what is saved outside the decoder layers, each layer's input, and one layer recomputed);
* total = weights + LoRA states + the activations of the preset's setting, plus a stated allowance
  (CUDA context and allocator slack); the GPUs (24 / 40 / 48 / 80 GB) it fits.
"""

from __future__ import annotations

import json
from pathlib import Path

GIB = 1024**3
GPUS_GB = (24, 40, 48, 80)
ALLOWANCE_GIB = 1.5  # CUDA context, cuBLAS workspace, allocator fragmentation (a stated guess)


def _meta_model(base: Path, cfg):
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from .lm import lora_config

    conf = AutoConfig.from_pretrained(base)
    dtype = getattr(torch, cfg.compute_dtype)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(conf, dtype=dtype)
    if cfg.load_in_4bit:  # prepare_model_for_kbit_training keeps the unquantized parts in fp32
        for name, p in model.named_parameters():
            if not _quantized(name, p, cfg):
                p.data = p.data.float()
    model = get_peft_model(model, lora_config(cfg))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return conf, model


def _quantized(name: str, p, cfg) -> bool:
    """Would bitsandbytes quantize this weight? The decoder layers' linear weights; not the
    embeddings, the head or norms."""
    return cfg.load_in_4bit and p.dim() == 2 and ".layers." in name and "lora_" not in name


def _flash_on_meta(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    """Attention as a flash kernel runs it (saves q, k, v, the output and a log-sum-exp per row,
    never the seq × seq matrix): on meta tensors SDPA would take its math path and count that
    matrix, which no GPU kernel keeps."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, is_causal=True, scale=scaling)
    return out[0].transpose(1, 2).contiguous(), None


def saved_bytes(model, batch: int, seq: int, checkpointing: bool) -> int:
    """Bytes autograd keeps after one training forward of ``batch`` × ``seq`` tokens (views of one
    tensor counted once, parameters not at all), on whatever device the model is (meta: no memory)."""
    import torch

    params = {id(p) for p in model.parameters()}
    keep: dict[int, int] = {}
    refs = []

    def pack(t):
        base = t._base if t._base is not None else t
        if id(base) not in params and id(t) not in params:
            refs.append(base)  # keep it alive so its id is not reused
            keep[id(base)] = base.numel() * base.element_size()
        return t

    dev = next(model.parameters()).device
    ids = torch.zeros(batch, seq, dtype=torch.long, device=dev)
    inner = model.get_base_model()
    if checkpointing:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    else:
        inner.gradient_checkpointing_disable()
    model.train()
    import transformers.masking_utils as mu

    real = mu._ignore_causal_mask_sdpa
    if dev.type == "meta":  # no padding in a full batch: the causal kernel, as in training (no .item() on meta)
        from transformers import AttentionInterface

        mu._ignore_causal_mask_sdpa = lambda *a, **k: True
        AttentionInterface.register("kokoro_meta_flash", _flash_on_meta)
        model.get_base_model().config._attn_implementation = "kokoro_meta_flash"
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids, use_cache=False)
    finally:
        mu._ignore_causal_mask_sdpa = real
    return sum(keep.values())


def tokens_per_epoch(cfg, base: Path, data, sample: int = 500) -> dict:
    """Training tokens per epoch, estimated from a seeded sample of the examples (tokenized as
    training does); needs the data and the base's tokenizer."""
    import random

    from transformers import AutoConfig, AutoTokenizer

    from kokoro.dataset import load
    from kokoro.splits import counselor_split, scorer_split

    from .examples import ExampleSet, sources_for
    from .lm import detect_format

    dialogues = load(data)
    split = counselor_split(dialogues, cfg.subset) if cfg.task == "counselor" else scorer_split(dialogues, cfg.seed)
    tok = AutoTokenizer.from_pretrained(base)
    fmt = detect_format(tok, AutoConfig.from_pretrained(base).model_type, cfg.chat_format)
    mk = dict(tok=tok, max_target_tokens=cfg.max_target_tokens, seed=cfg.seed)
    src = sources_for(cfg.task, dialogues, split.train, limit=cfg.max_train_examples, **mk)
    ds = ExampleSet(src, tok, fmt, cfg.task, cfg.max_seq_len, cfg.system_prompt, cfg.history_turns)
    from kokoro.prompts import ContextTooShort

    picks = random.Random(cfg.seed).sample(range(len(ds)), min(sample, len(ds)))
    lengths, skipped = [], 0
    for i in picks:
        try:
            lengths.append(len(ds[i]["input_ids"]))
        except ContextTooShort:  # training skips (and counts) these too
            skipped += 1
    mean = sum(lengths) / max(len(lengths), 1)
    kept = len(ds) * len(lengths) / max(len(picks), 1)
    return {
        "examples": len(ds),
        "mean_tokens": round(mean, 1),
        "tokens": round(mean * kept),
        "sampled": len(picks),
        "sampled_too_long": skipped,
    }


def plan(cfg, base: Path) -> dict:
    conf, model = _meta_model(base, cfg)
    weights = trainable = 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            trainable += p.numel() * 4
        elif _quantized(name, p, cfg):
            weights += p.numel() // 2 + (p.numel() // 64) * 4
        else:
            weights += p.numel() * p.element_size()
    b, s = cfg.per_device_batch, cfg.max_seq_len
    full = saved_bytes(model, b, s, checkpointing=False)
    outside = saved_bytes(model, b, s, checkpointing=True)  # the hook sees what is kept outside the layers
    layers = conf.num_hidden_layers
    per_layer = max(0, full - outside) / layers
    act_dtype = 4 if cfg.compute_dtype == "float32" else 2
    with_ckpt = outside + layers * b * s * conf.hidden_size * act_dtype + per_layer
    act = with_ckpt if cfg.gradient_checkpointing else full
    states = trainable * 4  # parameters, gradients, AdamW's two moments
    total = weights + states + act + ALLOWANCE_GIB * GIB
    gib = lambda x: round(x / GIB, 3)
    return {
        "base": str(base),
        "architecture": conf.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": trainable // 4,
        "per_device_batch": b,
        "max_seq_len": s,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "load_in_4bit": cfg.load_in_4bit,
        "compute_dtype": cfg.compute_dtype,
        "gib": {
            "weights": gib(weights),
            "lora_params_grads_adam": gib(states),
            "activations_without_checkpointing": gib(full),
            "activations_with_checkpointing": gib(with_ckpt),
            "allowance": ALLOWANCE_GIB,
            "total": gib(total),
        },
        "bytes": {"weights": weights, "lora_states": states, "activations_full": full, "activations_ckpt": with_ckpt},
        "fits_gpu_gb": [g for g in GPUS_GB if total <= g * GIB],
        "tokens_per_epoch": _tokens(cfg, base),
        "method": "config.json on the meta device; one forward executed on meta tensors, saved tensors counted",
    }


def _tokens(cfg, base: Path) -> dict:
    from kokoro.dataset import find_data_dir

    data = find_data_dir(cfg.data)
    if data is None:
        return {"note": "pass --data DIR (KokoroChat) to count tokens per epoch"}
    if not any((base / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return {"note": f"{base} has no tokenizer: tokens per epoch need the base's tokenizer files"}
    return tokens_per_epoch(cfg, base, data)


def print_plan(cfg, base: Path) -> int:
    print(json.dumps(plan(cfg, base), indent=1))
    return 0
