import json
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REPO

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def converted(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "gguf"
    r = subprocess.run(
        [sys.executable, "-m", "convert", str(tiny_run), "--out", str(out), "--quant", "q8_0,q4_k_m"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return out, r


def test_whole_path_passes_parity(converted):
    out, r = converted
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "parity.json").read_text())
    assert report["passed"] is True
    p = report["parity"]
    assert p["f16"]["tokenization_mismatches"] == 0 and p["f16"]["top1_agreement"] == 1.0
    assert p["q8_0"]["passed"] and p["q4_k_m"]["passed"]
    assert p["adapter"]["top1_agreement"] == 1.0  # base GGUF + runtime LoRA == merged model
    for name in (
        "model-f16.gguf",
        "model-q8_0.gguf",
        "model-q4_k_m.gguf",
        "adapter-f16.gguf",
        "convert.json",
        "parity.md",
        "hf/model.safetensors",
        "hf/tokenizer.model",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.partial"))
    settings = json.loads((out / "convert.json").read_text())
    assert settings["llama_cpp_python"] == "0.3.36" and settings["training_run"]["lora_r"] == 8
    # the model that was trained (4-bit base + adapter) against the merged one: measured, and a real gap
    gap = report["quantization_gap"]
    assert gap["quant_type"] == "nf4" and gap["positions"] > 100 and gap["device"] == "cpu"
    assert 0.5 <= gap["top1_agreement"] <= 1.0 and gap["max_abs_logit_diff"] > 1e-4
    assert "Quantization gap of merging" in (out / "parity.md").read_text()


def test_gguf_carries_training_template_and_stop_token(converted, tiny_run):
    from llama_cpp import Llama

    from convert.lint import gguf_metadata

    out, _ = converted
    run = json.loads((tiny_run / "run.json").read_text())
    md = gguf_metadata(out / "model-q4_k_m.gguf")
    assert md["tokenizer.chat_template"] == run["chat_format"]["template"]
    assert md["tokenizer.ggml.eot_token_id"] == run["eot_token_id"]
    llm = Llama(model_path=str(out / "model-q8_0.gguf"), n_ctx=256, n_threads=1, verbose=False)
    assert llm.token_eos() == run["eos_token_id"]
    assert llm.metadata["tokenizer.chat_template"] == run["chat_format"]["template"]


def test_planted_template_mismatch_fails_the_lint(converted, tiny_run, tmp_path):
    from convert.lint import lint
    from convert.llamacpp import converter_dir, run_script

    out, _ = converted
    run = json.loads((tiny_run / "run.json").read_text())
    assert lint(out / "model-f16.gguf", run) == []
    d = converter_dir()
    planted = tmp_path / "planted.gguf"
    run_script(
        d / "gguf-py" / "gguf" / "scripts" / "gguf_new_metadata.py",
        [str(out / "model-f16.gguf"), str(planted), "--chat-template", "{{ messages }}", "--force"],
        d,
    )
    assert any("chat template differs" in p for p in lint(planted, run))
    wrong_eot = dict(run, eot_token_id=run["eos_token_id"])
    assert any("end-of-turn id" in p for p in lint(out / "model-f16.gguf", wrong_eot))


def test_quantize_failure_leaves_no_partial_file(tmp_path):
    from convert.llamacpp import ConvertError
    from convert.quantize import quantize

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF not really")
    with pytest.raises(ConvertError, match="failed"):
        quantize(bad, tmp_path / "out.gguf", "q8_0")
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize(
    "setup,args,msg",
    [
        (lambda run: (run / "run.json").unlink(), [], "has no run.json"),
        (
            lambda run: (run / "adapter" / "adapter_model.safetensors").unlink(),
            [],
            "adapter_model.safetensors is missing",
        ),
        (lambda run: None, ["--quant", "q3_x"], "unknown quantization"),
        (lambda run: None, ["--llama-cpp", "/nonexistent"], "no convert_hf_to_gguf.py"),
    ],
)
def test_errors_name_what_is_missing(tiny_run, tmp_path, setup, args, msg):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "base"))
    setup(run)
    r = subprocess.run(
        [sys.executable, "-m", "convert", str(run), "--out", str(tmp_path / "o")] + args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and msg in r.stderr


def test_gguf_scorer_grammar_keeps_every_item_in_range(tiny_gguf, dialogues):
    from kokoro.gguf_scorer import GgufScorer

    sc = GgufScorer(tiny_gguf, n_ctx=2048, n_threads=1)
    pred = sc.predict(dialogues[0].turns[:12])
    assert len(pred) == 20 and all(0 <= x <= 5 for x in pred)
    assert sc.identity["chat_format"] == "gguf"


def test_not_enough_disk_is_named(tiny_run, tmp_path, monkeypatch):
    import shutil as sh

    from convert.llamacpp import ConvertError
    from convert.merge import check_disk

    monkeypatch.setattr(sh, "disk_usage", lambda p: sh._ntuple_diskusage(10, 10, 1))
    with pytest.raises(ConvertError, match="GiB free but the conversion writes"):
        check_disk(tiny_run / "base", tmp_path / "o", 2)


def test_evaluation_responses_on_the_tiny_gguf(tiny_gguf, kokoro_dir, tmp_path):
    out = tmp_path / "resp"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "responses",
            "--model",
            str(tiny_gguf),
            "--data",
            str(kokoro_dir),
            "--limit",
            "12",
            "--n-ctx",
            "512",
            "--max-tokens",
            "1",
            "--threads",
            "1",
            "--json",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout)
    assert m["n"] == 12 and set(m["model"]) >= {"bleu1", "bleu4", "rouge1", "rougeL", "dist1", "dist2"}
    assert m["retrieval"]["bleu1"] > 0  # the baseline returns real counselor replies
    # llama.cpp's own perf counters: consecutive turns of a dialogue reuse the KV prefix
    assert 0 < m["evaluated_over_naive"] < 0.5
    assert m["signature"].startswith("tok:mecab") and "split:" in m["signature"]
    lines = (out / "replies.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12 and "Kokoro-High (paper" in (out / "report.md").read_text(encoding="utf-8")
    # length behaviour: the report's lengths are those of the replies it wrote, and with one token
    # allowed every reply that is not empty (no end of turn first) is counted as cut there
    rows = [json.loads(x) for x in lines]
    assert m["mean_chars"]["model"] == round(sum(len(x["model"]) for x in rows) / 12, 1)
    assert m["mean_chars"]["gold"] == round(sum(len(x["gold"]) for x in rows) / 12, 1)
    assert m["empty_replies"] == sum(not x["model"].strip() for x in rows)
    assert 0 < m["cut_at_max_tokens"] == sum(bool(x["model"]) for x in rows), rows[:3]


def test_responses_killed_mid_run_resume_where_they_stopped(tiny_gguf, kokoro_dir, tmp_path):
    """kill -9 once a dialogue is done: the rerun generates only what was left and writes the
    same replies as a run never stopped; other settings are refused without touching the progress."""
    args = [sys.executable, "-m", "evaluation", "responses", "--model", str(tiny_gguf), "--data", str(kokoro_dir)]
    args += ["--limit", "150", "--n-ctx", "512", "--max-tokens", "4", "--threads", "1", "--json", "--out"]
    run = lambda out, *extra: subprocess.run(
        args + [str(out), *extra], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    whole = run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    out = tmp_path / "cut"
    progress = out / "progress.jsonl"
    p = subprocess.Popen(args + [str(out)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline:
        if progress.is_file() and len(progress.read_text(encoding="utf-8").splitlines()) >= 2:
            break
        time.sleep(0.005)
    p.kill()
    p.wait()
    assert not (out / "metrics.json").exists(), "the run ended before it could be killed"
    with progress.open("a", encoding="utf-8") as f:
        f.write('{"dialogue": "torn by the kill", "tur')  # a line cut short as a kill can leave it
    before = progress.read_text(encoding="utf-8")
    other = run(out, "--max-tokens", "5")
    assert other.returncode == 2 and "progress.jsonl holds an interrupted run with other settings" in other.stderr
    assert progress.read_text(encoding="utf-8") == before
    again = run(out)
    assert again.returncode == 0, again.stderr[-2000:]
    m, w = json.loads(again.stdout), json.loads(whole.stdout)
    assert m["resumed_dialogues"] >= 1 and w["resumed_dialogues"] == 0
    assert (out / "replies.jsonl").read_text(encoding="utf-8") == (tmp_path / "whole" / "replies.jsonl").read_text(
        encoding="utf-8"
    )
    assert m["model"] == w["model"] and m["retrieval"] == w["retrieval"]
    # prefix reuse is summed over both processes (llama.cpp's own counters may differ by a token or two)
    mf, wf = (json.loads((o / "metrics.json").read_text(encoding="utf-8")) for o in (out, tmp_path / "whole"))
    assert mf["prompt_tokens_naive"] == wf["prompt_tokens_naive"]
    assert abs(mf["prompt_tokens_evaluated"] - wf["prompt_tokens_evaluated"]) <= 0.01 * wf["prompt_tokens_evaluated"]
    assert not progress.exists()  # the report holds every reply now
