"""The committed demo adapter was made by the preset that claims to rebuild it."""

import json
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("folder,preset", [("gemma-270m-cpu", "gemma-270m-cpu")])
def test_committed_adapter_matches_its_preset(folder, preset):
    run = json.loads((REPO / "models" / folder / "run.json").read_text(encoding="utf-8"))
    cfg = build_config("counselor", preset)
    trained = run["settings"]
    for k in KEYS:
        want = getattr(cfg, k)
        got = trained[k]
        assert (list(got) if isinstance(got, (list, tuple)) else got) == (
            list(want) if isinstance(want, tuple) else want
        ), f"models/{folder}/run.json has {k}={got!r}, preset {preset} gives {want!r}"
    assert run["best_checkpoint"].endswith(f"checkpoint-{cfg.max_steps}")
