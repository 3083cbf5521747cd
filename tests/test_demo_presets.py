"""The committed demo adapter was made by the preset that claims to rebuild it."""

import json
from pathlib import Path

from training.config import build_config

REPO = Path(__file__).resolve().parents[1]
# what shapes the weights (eval_steps only picks among checkpoints; the run kept its last)
KEYS = (
    "history_turns",
    "max_seq_len",
    "max_steps",
    "max_train_examples",
    "max_target_tokens",
    "learning_rate",
    "warmup_steps",
    "batch_size",
    "epochs",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "subset",
    "chat_format",
    "seed",
)


def _plain(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def test_committed_adapter_matches_its_preset():
    run = json.loads((REPO / "models" / "gemma-270m-cpu" / "run.json").read_text(encoding="utf-8"))
    cfg = build_config("counselor", "gemma-270m-cpu")
    for k in KEYS:
        got, want = run["settings"][k], getattr(cfg, k)
        assert _plain(got) == _plain(want), f"models/gemma-270m-cpu/run.json has {k}={got!r}, the preset {want!r}"
    assert run["best_checkpoint"].endswith(f"checkpoint-{cfg.max_steps}")
