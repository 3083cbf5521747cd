import hashlib
import json
import subprocess
import sys

import pytest
from conftest import REPO

pytest.importorskip("torch")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_cfg(tiny_base, kokoro_dir, out, task="counselor", preset="tiny", **ov):
    from training.config import build_config

    base = {"base_model": str(tiny_base), "data": str(kokoro_dir), "out": str(out)}
    return build_config(task, preset, overrides=base | ov)


def eval_losses(run):
    return [h["eval_loss"] for h in run["log_history"] if "eval_loss" in h]


def adapter_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


def test_label_mask_covers_only_target_and_end_of_turn(tiny_base, dialogues):
    from transformers import AutoTokenizer

    from kokoro.chat_formats import get_format
    from kokoro.prompts import counselor_example
    from training.examples import IGNORE, encode

    tok = AutoTokenizer.from_pretrained(tiny_base)
    d = dialogues[0]
    merged = d.merged()
    ex = counselor_example(get_format("gemma"), merged[:3], merged[3].text)
    enc = encode(tok, ex.prompt, ex.completion)
    labelled = [x for x in enc["labels"] if x != IGNORE]
    n_prompt = len(tok(ex.prompt, add_special_tokens=False).input_ids)
    assert enc["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert enc["labels"][n_prompt:] == enc["input_ids"][n_prompt:] == labelled
    assert labelled[-1] == tok.convert_tokens_to_ids("<end_of_turn>")
    assert tok.decode(labelled) == merged[3].text + "<end_of_turn>"
    assert enc["input_ids"][0] == tok.bos_token_id and enc["input_ids"][1] != tok.bos_token_id  # one BOS


def test_kokoro_renders_like_transformers(tiny_base, dialogues):
    from transformers import AutoTokenizer

    from kokoro.chat_formats import ChatFormat
    from kokoro.prompts import counselor_messages

    tok = AutoTokenizer.from_pretrained(tiny_base)
    msgs = counselor_messages(dialogues[0].merged()[:5])
    fmt = ChatFormat("t", tok.chat_template, "<end_of_turn>", tok.bos_token, tok.eos_token)
    for gen in (True, False):
        assert fmt.render(msgs, gen) == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)


def test_qlora_nf4_on_cpu(tiny_base, kokoro_dir, tmp_path, torch_threads):

    from training import lm

    before = sha(tiny_base / "model.safetensors")
    cfg = tiny_cfg(tiny_base, kokoro_dir, tmp_path / "run")
    assert cfg.load_in_4bit and cfg.quant_type == "nf4"
    out = lm.train(cfg)
    run = json.loads((out / "run.json").read_text())
    assert run["quantized_layers"] == 14  # 7 projections × 2 layers in 4-bit NF4
    losses = eval_losses(run)
    assert losses[-1] < losses[0]  # validation loss went down
    tensors = adapter_tensors(out)
    lora_b = [v for k, v in tensors.items() if "lora_B" in k]
    assert len(lora_b) == 14 and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero
    assert sha(tiny_base / "model.safetensors") == before  # the base is untouched
    assert run["settings"]["lora_r"] == 8 and run["settings"]["lora_alpha"] == 16
    assert run["chat_format"]["eot_token"] == "<end_of_turn>" and run["eot_token_id"] == 5
    assert len(run["split"]["test"]) == 118 and run["split"]["hash"]["train"]
    assert (out / "loss.png").stat().st_size > 1000 and (out / "adapter" / "tokenizer.model").is_file()


def test_plain_lora_cli_on_a_clean_run_folder(kokoro_dir, tmp_path):
    """`python -m training counselor --preset tiny` builds its own tiny base."""
    out = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "counselor",
            "--preset",
            "tiny",
            "--data",
            str(kokoro_dir),
            "--out",
            str(out),
            "--set",
            "load_in_4bit=false",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["quantized_layers"] == 0 and not run["settings"]["load_in_4bit"]
    losses = eval_losses(run)
    assert losses[-1] < losses[0]
    assert (out / "base" / "tokenizer.model").is_file()


def test_paper_counselor_preset_path_on_cpu(tiny_base, kokoro_dir, tmp_path, torch_threads):
    from training import lm

    cfg = tiny_cfg(
        tiny_base,
        kokoro_dir,
        tmp_path / "run",
        preset="paper",
        device="cpu",
        max_steps=2,
        max_train_examples=16,
        max_eval_examples=4,
        eval_steps=1,
        max_seq_len=256,
        history_turns=4,
        max_target_tokens=64,
    )
    assert (cfg.optim, cfg.learning_rate, cfg.warmup_steps, cfg.batch_size, cfg.epochs) == (
        "adamw_8bit",
        1e-3,
        100,
        8,
        5,
    )
    assert cfg.gradient_checkpointing and cfg.compute_dtype == "bfloat16"
    run = json.loads((lm.train(cfg) / "run.json").read_text())
    assert run["quantized_layers"] == 14 and run["settings"]["optim"] == "adamw_8bit"
    assert run["best_checkpoint"]


def test_paper_scorer_preset_path_on_cpu(tiny_base, kokoro_dir, tmp_path, torch_threads):
    from training import lm

    cfg = tiny_cfg(
        tiny_base,
        kokoro_dir,
        tmp_path / "run",
        task="scorer",
        preset="scorer-paper",
        device="cpu",
        max_steps=2,
        max_train_examples=8,
        max_eval_examples=2,
        max_seq_len=2048,
        seed=3,
    )
    assert (cfg.optim, cfg.learning_rate, cfg.batch_size, cfg.epochs, cfg.best_metric) == (
        "adamw_torch_fused",
        2e-4,
        4,
        4,
        "accuracy",
    )
    run = json.loads((lm.train(cfg) / "run.json").read_text())
    accs = [h["eval_accuracy"] for h in run["log_history"] if "eval_accuracy" in h]
    assert accs and all(0.0 <= a <= 1.0 for a in accs)
    assert run["split"]["name"] == "scorer-seed3" and len(run["split"]["test"]) == 659


def test_resume_from_latest_checkpoint(tiny_base, kokoro_dir, tmp_path, torch_threads):
    from training import lm

    out = tmp_path / "run"
    lm.train(tiny_cfg(tiny_base, kokoro_dir, out, max_steps=3, eval_steps=3, load_in_4bit=False))
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
    run = json.loads(
        (
            lm.train(
                tiny_cfg(tiny_base, kokoro_dir, out, max_steps=6, eval_steps=3, load_in_4bit=False, resume="latest")
            )
            / "run.json"
        ).read_text()
    )
    steps = [h["step"] for h in run["log_history"] if "loss" in h and "eval_loss" not in h]
    assert steps[-1] == 6 and (out / "checkpoints" / "checkpoint-6").is_dir()


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--preset", "tiny", "--base", "/nonexistent/model"], "base model folder /nonexistent/model not found"),
        (["--preset", "tiny", "--set", "device=cuda"], "no CUDA GPU"),
        (["--preset", "tiny", "--set", "optim=paged_adamw_8bit"], "needs CUDA"),
        (["--preset", "tiny", "--set", "max_seq_len=64"], "too short for targets"),
        (["--preset", "nope"], "unknown preset"),
        (["--preset", "scorer-paper"], "not for the counselor"),
        (["--preset", "tiny", "--set", "lora_rank=4"], "unknown setting 'lora_rank'"),
        (["--preset", "tiny", "--set", "epochs=many"], "takes a number"),
        (["--preset", "paper", "--data", "/nonexistent/data"], "folder not found"),
        (["--preset", "paper"], "no base model"),
    ],
)
def test_bad_settings_fail_before_work(args, msg, kokoro_dir, tmp_path, capsys, monkeypatch):
    from training.__main__ import main

    monkeypatch.setenv("KOKOROCHAT_DIR", str(kokoro_dir))
    assert main(["counselor", "--out", str(tmp_path / "o")] + args) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o" / "run.json").exists()


def test_4bit_without_bitsandbytes_is_named(monkeypatch, kokoro_dir):
    import importlib.util

    from training.config import ConfigError, build_config, check_environment

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a))
    cfg = build_config("counselor", "tiny", overrides={"data": str(kokoro_dir)})
    with pytest.raises(ConfigError, match="needs bitsandbytes"):
        check_environment(cfg, needs_base=False)
