"""`python -m training … --plan` against what the tiny QLoRA run really holds on CPU: weights (4-bit
with their quantization state), LoRA parameters + gradients + AdamW moments after a real step,
and the activations autograd keeps (the same counting hook on real tensors and on meta ones)."""

import json
import subprocess
import sys

from conftest import REPO


def test_plan_is_within_25_percent_of_the_tiny_run_measured(tiny_base, kokoro_dir):
    import torch

    from training.config import build_config
    from training.lm import load_model
    from training.plan import saved_bytes

    r = subprocess.run(
        [sys.executable, "-m", "training", "counselor", "--preset", "tiny", "--base", str(tiny_base), "--plan"]
        + ["--data", str(kokoro_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    plan = json.loads(r.stdout)
    tokens = plan["tokens_per_epoch"]
    assert tokens["examples"] == 48 and 0 < tokens["mean_tokens"] <= 256 and tokens["tokens"] > 0
    cfg = build_config("counselor", "tiny", overrides={"base_model": str(tiny_base)})
    torch.manual_seed(0)
    model = load_model(cfg, tiny_base, "cpu")
    nb = lambda t: t.numel() * t.element_size()
    weights = sum(nb(p) for p in model.parameters() if not p.requires_grad)
    weights += sum(nb(p.quant_state.absmax) for p in model.parameters() if getattr(p, "quant_state", None))
    b, s = cfg.per_device_batch, cfg.max_seq_len
    full = saved_bytes(model, b, s, checkpointing=False)
    outside = saved_bytes(model, b, s, checkpointing=True)
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    ckpt = outside + layers * b * s * hidden * 4 + (full - outside) / layers
    model.gradient_checkpointing_disable()
    ids = torch.randint(5, 1900, (b, s))
    model(input_ids=ids, labels=ids).loss.backward()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    opt.step()
    states = sum(nb(p) + nb(p.grad) for p in model.parameters() if p.requires_grad)
    states += sum(nb(t) for st in opt.state.values() for t in st.values() if torch.is_tensor(t) and t.dim())
    planned = plan["bytes"]
    for name, measured in (
        ("weights", weights),
        ("lora_states", states),
        ("activations_full", full),
        ("activations_ckpt", ckpt),
    ):
        assert abs(planned[name] - measured) <= 0.25 * measured, (name, planned[name], measured)
    assert plan["fits_gpu_gb"] == [24, 40, 48, 80] and plan["gib"]["total"] > 1.5


def test_plan_without_a_base_config_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "training", "counselor", "--preset", "tiny", "--base", str(tmp_path), "--plan"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr
