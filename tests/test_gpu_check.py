"""Issue 35: scripts/gpu_check.py, prepared before a GPU exists — the dry run's plan, the report's
rendering, the budget, and every check run end to end on the CPU with the tiny widths."""

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.py"


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_the_dry_run_prints_a_plan_that_fits_a_device_call():
    r = run("--dry-run")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["budget_s"] <= 600 and plan["timeout_s"] <= 600 and plan["estimate_total_s"] <= plan["budget_s"]
    assert [c["name"] for c in plan["checks"]] == ["env", "loss", "qlora", "llama"]
    pins = (REPO / "requirements" / "training.txt").read_text()
    (bnb,) = plan["wheels"]
    assert bnb["name"] == "bitsandbytes" and f"bitsandbytes=={bnb['version']}" in pins
    assert plan["wheel_total_bytes"] + plan["tree_bytes"] <= plan["limit_bytes"] or not plan["fits"]
    assert plan["tree_bytes"] < plan["limit_bytes"] // 2, "the tree alone leaves room for the wheels"
    assert "--budget 540" in plan["device_command"] and plan["carry"] == [".gpu_wheels"]


def test_every_check_runs_end_to_end_on_the_cpu_and_writes_both_reports(tmp_path):
    r = run("--tiny", "--layers", "2", "--steps", "3", "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = report["checks"]
    assert report["device"] == "cpu" and set(checks) == {"env", "loss", "qlora", "llama"}
    assert checks["env"]["versions"]["torch"] and checks["env"]["missing_requirements"] == []
    q = checks["qlora"]
    assert q["preset"] == "tiny" and q["measured"]["steps"] == 3 and len(q["measured"]["losses"]) == 3
    assert q["measured"]["tokens_per_s"] > 0 and q["plan"]["total"] > 0 and q["plan_full_layers"]["total"] > 0
    assert checks["loss"]["equal_within_bf16"], checks["loss"]
    assert "skipped" in checks["llama"]  # this machine's llama-cpp-python has no GPU offload: said, not hidden
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| qlora | tiny × 2 layers" in md and "tok/s" in md


def test_what_does_not_fit_the_budget_is_skipped_and_said(tmp_path):
    r = run("--tiny", "--budget", "10", "--checks", "env,qlora", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    checks = json.loads((tmp_path / "gpu_check.json").read_text())["checks"]
    assert "versions" in checks["env"] and checks["qlora"]["skipped"].startswith("needs about 240 s")


def test_a_gpu_report_renders_its_figures(tmp_path):
    sample = {
        "device": "cuda",
        "started": "2027-01-01 00:00:00",
        "checks": {
            "env": {
                "versions": {"torch": "2.9", "bitsandbytes": "0.50.2"},
                "missing_requirements": ["trl"],
                "gpu": "NVIDIA H100",
                "cuda_version": "12.8",
                "seconds": 1,
            },
            "qlora": {
                "widths": "Llama-3.1-8B",
                "layers": 4,
                "batch": 2,
                "seq": 4096,
                "plan": {"total": 12.0, "allowance": 1.5},
                "plan_full_layers": {"total": 20.1},
                "measured_over_plan": 0.95,
                "measured": {"tokens_per_s": 5000.0, "peak_allocated_gib": 9.97},
                "seconds": 100,
            },
            "loss": {
                "first_loss": {"cpu": 6.2831, "cuda": 6.2835},
                "relative_difference": 6e-5,
                "equal_within_bf16": True,
                "seconds": 20,
            },
            "llama": {"error": "RuntimeError: boom", "seconds": 2},
        },
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(sample))
    r = run("--summarize", str(path))
    assert r.returncode == 0
    assert "NVIDIA H100, CUDA 12.8" in r.stdout and "missing: trl" in r.stdout
    assert "peak 9.97 GiB vs plan 12.0 GiB (ratio 0.95)" in r.stdout and "plan for all layers 20.1 GiB" in r.stdout
    assert "cpu 6.28310, cuda 6.28350" in r.stdout and "equal" in r.stdout
    assert "**error**: RuntimeError: boom" in r.stdout
