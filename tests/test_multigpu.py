"""Multi-process training as a GPU user starts it: torchrun with two processes (gloo on CPU) against
one process, and a multi-GPU machine started without a launcher."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, free_port

pytest.importorskip("torch")


def train_cmd(tiny_base, kokoro_dir, out) -> list[str]:
    return ["-m", "training", "counselor", "--preset", "tiny", "--base", str(tiny_base), "--data", str(kokoro_dir)] + [
        "--out",
        str(out),
    ]


def step0_eval_loss(run: dict) -> float:
    return next(h["eval_loss"] for h in run["log_history"] if "eval_loss" in h and h["step"] == 0)


def first_train_loss(run: dict) -> float:
    return next(h["loss"] for h in run["log_history"] if "loss" in h and h["step"] == 1)


def test_torchrun_two_processes_match_one(tiny_base, kokoro_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run(
        [sys.executable] + train_cmd(tiny_base, kokoro_dir, one), cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r1.returncode == 0, r1.stderr[-3000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    r2 = subprocess.run(
        launcher + [f"--master_port={free_port()}"] + train_cmd(tiny_base, kokoro_dir, two),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]  # every example was checked before step 1, on both ranks
    a, b = (json.loads((d / "run.json").read_text()) for d in (one, two))
    assert (a["world_size"], a["global_batch"], a["gradient_accumulation"]) == (1, 4, 2)
    assert (b["world_size"], b["global_batch"], b["gradient_accumulation"]) == (2, 4, 1)
    assert a["examples_checked"] == b["examples_checked"]
    checked = b["examples_checked"]["train"]
    assert checked["skipped"] >= 1, "the tiny preset holds a training example longer than its context"
    assert b["split"]["used_train"] == checked["checked"] - checked["skipped"], "it is dropped before step 1"
    assert step0_eval_loss(b) == pytest.approx(step0_eval_loss(a), abs=1e-3)
    # the first training step sees other examples in each run, but an untrained model's loss is
    # about the same on any of them; a loss divided by the world size would be half
    assert first_train_loss(b) == pytest.approx(first_train_loss(a), rel=0.15)
    assert max(h["step"] for h in b["log_history"]) == b["settings"]["max_steps"] == 6  # ran to the end
    assert sorted(os.listdir(two)) == sorted(os.listdir(one)) == ["adapter", "checkpoints", "loss.png", "run.json"]


def test_multi_gpu_without_a_launcher_is_refused(kokoro_dir, tmp_path, monkeypatch):
    import torch

    from training.config import ConfigError, build_config, check_environment

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for var in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", ["training", "counselor", "--preset", "paper", "--base", str(base)])
    cfg = build_config("counselor", "paper", overrides={"base_model": str(base), "data": str(kokoro_dir)})
    with pytest.raises(ConfigError, match=r"4 GPUs.*\n  torchrun --nproc_per_node 4 -m training counselor --preset"):
        check_environment(cfg)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    check_environment(cfg)  # under the launcher: accepted, and the paper's global batch of 8 is kept
    assert cfg.batch_size == 8 and cfg.grad_accum(4) == 1 and cfg.grad_accum(1) == 4
    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(ConfigError, match="not a multiple of per_device_batch 2 × 8 processes"):
        check_environment(cfg)


def test_paper_presets_keep_the_global_batch_and_sample_validation():
    """The paper's "batch size 8 on four A100s" / "4 on two A6000s" read as global batches."""
    from training.config import build_config

    c = build_config("counselor", "paper")
    assert (c.batch_size, c.per_device_batch, c.grad_accum(4), c.grad_accum(2), c.grad_accum(1)) == (8, 2, 1, 2, 4)
    assert (c.max_eval_examples, c.eval_batch) == (2000, 8)
    s = build_config("scorer", "scorer-paper")
    assert (s.batch_size, s.per_device_batch, s.grad_accum(2), s.grad_accum(1)) == (4, 1, 2, 4)
    assert s.eval_batch == 2 and s.max_eval_examples == 0  # ~590 validation sessions, once per epoch
