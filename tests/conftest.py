import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "kokorochat"
NO_DATA = "KokoroChat not found"
NO_BROWSER = "no headless browser"
NO_FONT = "no Japanese font"
# fixtures that train or convert a model: a test using one is in the slow tier
SLOW_FIXTURES = {"tiny_base", "tiny_run", "tiny_gguf", "small_cpu_scorer", "torch_threads"}
# tests never download: what they need comes from ./setup.sh (convert's llama.cpp source among it)
os.environ.setdefault("KOKORO_NO_FETCH", "1")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _skips(terminalreporter) -> list:
    return terminalreporter.stats.get("skipped", [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = _skips(terminalreporter)
    why = {
        NO_DATA: f"at {data_dir()} (set KOKOROCHAT_DIR); the integration tests did not run",
        NO_BROWSER: "(Debian's chromium and chromium-driver); the human-evaluation app was not tried in a real browser",
        NO_FONT: "(Debian's fonts-noto-cjk); the rich menu images were not drawn",
    }
    for reason, consequence in why.items():
        n = sum(reason in str(r.longrepr) for r in skipped)
        if n:
            terminalreporter.write_line(f"{n} test(s) skipped: {reason} {consequence}", yellow=True)
    if skipped and os.environ.get("KOKORO_FAIL_ON_SKIP") == "1":
        terminalreporter.write_line(f"KOKORO_FAIL_ON_SKIP=1: {len(skipped)} skipped test(s) fail this run", red=True)


def pytest_sessionfinish(session, exitstatus):
    rep = session.config.pluginmanager.get_plugin("terminalreporter")
    if rep is not None and _skips(rep) and os.environ.get("KOKORO_FAIL_ON_SKIP") == "1" and exitstatus == 0:
        session.exitstatus = 1


def free_port() -> int:
    """A free TCP port on loopback (for servers the tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiesce(emu, timeout: float = 30.0) -> None:
    """Wait until the bot has nothing left to do: every stored event handled, no reply owed, no
    generation queued or running, nothing due in the outbox (a reply owed in a session a console
    counselor holds is theirs, not the bot's). A wait on state, not a sleep."""
    import time

    engine = emu.runtime.engine
    store = engine.store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = (
            store.db["events"].count_where("status = 'pending'")
            or store.db["sessions"].count_where("status = 'open' and pending_reply = 1 and held_by is null")
            or engine.jobs.unfinished_tasks
            or store.db["outbox"].count_where("status = 'sending' or (status = 'pending' and attempts = 0)")
        )
        if not busy:
            return
        with emu.fake.lock:
            emu.fake.changed.wait(0.05)
    raise AssertionError(f"the bot was still busy after {timeout} s")


def say(emu, user: str, *lines: str) -> None:
    """The client writes each line, and the bot settles (``quiesce``) before the next."""
    for t in lines:
        emu.text(user, t)
        quiesce(emu)


def data_dir() -> Path:
    p = Path(os.environ.get("KOKOROCHAT_DIR") or SHARED_DATA)
    return p


@pytest.fixture(scope="session")
def kokoro_dir() -> Path:
    p = data_dir()
    if not p.is_dir():
        pytest.skip(f"{NO_DATA} at {p}; set KOKOROCHAT_DIR")
    return p


@pytest.fixture(scope="session")
def dialogues(kokoro_dir):
    from kokoro.dataset import load

    return load(kokoro_dir)


def good_record(items=None, flags=None, turns=None, score=None):
    """A valid KokoroChat object, for fixtures the tests write themselves."""
    from kokoro.items import FLAG_CHECKED, FLAGS, ITEMS, total_score

    items = list(items or [3] * 20)
    flags = flags or {}
    review = {"evaluation_id": 1, "evaluation_created_at": "2020-03-08T16:37:00", "client_id": 3, "counselor_id": 7}
    review["score"] = total_score(items, flags) if score is None else score
    for it, v in zip(ITEMS, items):
        review[it.key] = v
    for f in FLAGS:
        review[f.key] = FLAG_CHECKED if flags.get(f.key) else None
    turns = turns or [
        ("counselor", "こんにちは。相談員です。"),
        ("client", "よろしくお願いします。"),
        ("client", "仕事のことで"),
        ("counselor", "お仕事のことですね。"),
    ]
    dialogue = [{"role": r, "time": f"2020-03-08T15:00:{i:02d}", "utterance": u} for i, (r, u) in enumerate(turns)]
    return {
        "dialogue": dialogue,
        "topic": {"main_jp": "職場問題", "main_en": "Workplace Issues", "sub": "x"},
        "review_by_client_jp": {},
        "review_by_client_en": review,
    }


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, dialogues):
    """A tiny Llama + SentencePiece tokenizer built offline (training/tiny.py)."""
    from training.tiny import build_tiny_base

    return build_tiny_base(dialogues, tmp_path_factory.mktemp("tiny") / "base", seed=0)


@pytest.fixture(scope="session")
def torch_threads():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(tiny_base, kokoro_dir, tmp_path_factory):
    """A tiny QLoRA counselor run (6 steps on CPU)."""
    from training.config import build_config
    from training.lm import train

    out = tmp_path_factory.mktemp("tinyrun") / "run"
    return train(
        build_config(
            "counselor", "tiny", overrides={"base_model": str(tiny_base), "data": str(kokoro_dir), "out": str(out)}
        )
    )


@pytest.fixture(scope="session")
def tiny_gguf(tiny_run, tmp_path_factory):
    """The tiny counselor converted to GGUF q8_0 (chat template and end-of-turn in its metadata)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("tinygguf") / "gguf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "convert",
            str(tiny_run),
            "--out",
            str(out),
            "--quant",
            "q8_0",
            "--no-parity",
            "--base-gguf",
            "no",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=900,
    )
    return out / "model-q8_0.gguf"


SAMPLES = REPO.parent / "shared" / "line" / "webhook-samples"


@pytest.fixture(scope="session")
def small_cpu_scorer(kokoro_dir, tmp_path_factory):
    """A CPU scorer fitted on a 500-dialogue slice: (folder, printed metrics)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("cpu") / "scorer"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "scorer",
            "--preset",
            "cpu",
            "--data",
            str(kokoro_dir),
            "--out",
            str(out),
            "--set",
            "limit=500",
            "--set",
            "max_features=5000",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return out, json.loads(r.stdout.strip().splitlines()[-1])
