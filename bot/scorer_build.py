"""The post-session scorer on a fresh machine: nothing holding KokoroChat text may be committed, so
the CPU scorer is built from the user's own copy of KokoroChat the first time `bot chat` runs, into
the scorer folder the bot loads (``models/cpu-scorer``).

The build never stands between a person and the first reply: it runs in its own process
(``python -m bot.scorer_build``, a new session, lower priority), detached from the chat, so the
conversation starts at once and Ctrl-C in the chat does not stop it. It writes into
``<scorer>.partial`` and renames it into place when done, so a half-built scorer never loads; it
holds a lock (``<scorer>.build.lock``) while it runs, so a second chat attaches to the running
build instead of starting another, and a build that died is restarted cleanly by the next chat.
Its stage goes to ``<scorer>.build.json`` (no text), which the chat shows between turns."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kokoro.dataset import DATA_ENV, KNOWN_PLACES, find_data_dir

LIMIT_ENV = "KOKORO_SCORER_BUILD_LIMIT"  # dialogues to build from (a quick smoke build); unset = all
BUILD_MINUTES = 5  # a full build on 2 cores: 4.4 min alone (docs/results.md), said before it starts


def files(p: Path) -> dict[str, Path]:
    return {
        k: p.with_name(p.name + suffix)
        for k, suffix in (
            ("partial", ".partial"),
            ("lock", ".build.lock"),
            ("state", ".build.json"),
            ("log", ".build.log"),
        )
    }


def state(p: Path) -> dict:
    """The running (or last) build's state: stage, stages done of total, pid, started; {} if none."""
    try:
        return json.loads(files(p)["state"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def building(p: Path) -> bool:
    """Is a build of ``p`` running now (its process holds the lock)?"""
    lock = files(p)["lock"]
    if not lock.exists():
        return False
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def minutes_left(p: Path) -> int:
    """A plain estimate for the client: the build's planned minutes less what has run."""
    s = state(p)
    ran = (time.time() - s.get("started", time.time())) / 60
    return max(1, round(s.get("minutes", BUILD_MINUTES) - ran))


def ensure_scorer(path: str | None, data=None, out=sys.stderr) -> str:
    """'ready' when the scorer exists, 'building' when a build runs in the background (started now
    or by an earlier chat), 'off' when there can be none (no scorer configured, a scorer GGUF that
    is missing, no KokoroChat found). Says which on ``out``; never waits for the build."""
    if not path:
        return "off"
    p = Path(path)
    if p.exists():
        _note_if_older(p, out)
        return "ready"
    if p.suffix == ".gguf":
        print(f"note: scorer GGUF {p} not found: post-session feedback is off", file=out)
        return "off"
    found = find_data_dir(data)
    if found is None:
        places = ", ".join(str(x) for x in KNOWN_PLACES)
        print(
            f"note: post-session feedback is off: it needs a scorer built from KokoroChat, and no copy was found "
            f"(set {DATA_ENV} or --data, or clone it to one of: {places})",
            file=out,
        )
        return "off"
    if building(p):
        print(
            f"The feedback scorer is still being built in the background ({progress(p)}); the chat starts now.",
            file=out,
            flush=True,
        )
        return "building"
    start(p, found)
    print(
        f"Building the post-session feedback scorer from {found} into {p} in the background — first run only, "
        f"about {BUILD_MINUTES} minutes on 2 cores. The chat starts now; the feedback card comes at the end of the "
        f"session if the scorer is ready by then (progress: {files(p)['log']}).",
        file=out,
        flush=True,
    )
    return "building"


def progress(p: Path) -> str:
    s = state(p)
    if not s:
        return "starting"
    return f"stage {s.get('done', 0) + 1}/{s.get('total', '?')}: {s.get('stage', '')}, about {minutes_left(p)} min left"


def start(p: Path, data: Path) -> subprocess.Popen:
    """Start the detached build process (its own session: the chat's Ctrl-C does not reach it)."""
    f = files(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    log = open(f["log"], "w")
    cmd = [sys.executable, "-m", "bot.scorer_build", "--out", str(p), "--data", str(data)]
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    log.close()
    deadline = time.monotonic() + 30  # until it holds the lock, so a second chat sees it building
    while time.monotonic() < deadline and proc.poll() is None and not building(p):
        time.sleep(0.05)
    return proc


def build(p: Path, data: Path) -> int:
    """The build process: lock, build into .partial, rename into place, report each stage."""
    f = files(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    lock = open(f["lock"], "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another build of this scorer is running", flush=True)
        return 0
    _write(f["state"], {"pid": os.getpid(), "started": time.time(), "stage": "starting", "done": 0})
    try:
        os.nice(19)  # the chat's generation goes first
    except OSError:
        pass
    from training.cpu_scorer import STAGES, CpuScorerConfig, train_cpu_scorer

    limit = int(os.environ.get(LIMIT_ENV) or 0)
    shutil.rmtree(f["partial"], ignore_errors=True)  # what a build that died left: start clean
    t0 = time.time()
    info = {"pid": os.getpid(), "started": t0, "total": len(STAGES), "done": 0, "minutes": BUILD_MINUTES}
    times: dict[str, float] = {}
    seen: list[str] = []

    def stage(name: str) -> None:
        now = time.time()
        if seen:
            times[seen[-1]] = round(now - info["last"], 1)
        seen.append(name)
        info.update(stage=name, done=len(seen) - 1, last=now)
        _write(f["state"], info)
        print(f"stage {len(seen)}/{len(STAGES)}: {name}", flush=True)

    result = train_cpu_scorer(CpuScorerConfig(data=str(data), out=str(f["partial"]), limit=limit), progress=stage)
    if seen:
        times[seen[-1]] = round(time.time() - info["last"], 1)
    os.replace(f["partial"], p)
    info.update(done=len(STAGES), stage="ready", seconds=round(time.time() - t0), stage_seconds=times)
    _write(f["state"], info)
    print(
        f"feedback scorer ready in {p} ({time.time() - t0:.0f} s; stage seconds {times}; on its test split "
        f"ACC {result['acc']}, ACC_soft {result['acc_soft']}, MAE {result['mae']})",
        flush=True,
    )
    return 0


def wait(p: Path, out=sys.stderr, poll_s: float = 1.0) -> bool:
    """Wait for a background build to end, showing its stage as it changes; True if the scorer is
    there at the end."""
    shown = None
    while building(p):
        now = progress(p)
        if now.split(",")[0] != shown:
            shown = now.split(",")[0]
            print(f"feedback scorer: {now}", file=out, flush=True)
        time.sleep(poll_s)
    return p.exists()


def _write(path: Path, info: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, path)


def _note_if_older(p: Path, out) -> None:
    """A CPU scorer built by an older version still scores; say that a rebuild would read more."""
    from kokoro.cpu_scorer import CARD, COHERENCE

    try:
        card = json.loads((p / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a GGUF, or not a CPU scorer: loading it says what is wrong
    coherence = card.get("coherence", {})
    missing = [n for n in COHERENCE if n not in coherence.get("features", ())]
    lacks = [f"does not read {', '.join(missing)}"] if missing else []
    if not coherence.get("prefixes"):
        lacks.append("was not trained on short sessions (it penalises more real short sessions)")
    if lacks:
        print(
            f"note: the feedback scorer in {p} was built by an older version and {'; it '.join(lacks)}; "
            f"delete that folder to rebuild it (about {BUILD_MINUTES} minutes)",
            file=out,
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot.scorer_build", description="build the CPU feedback scorer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", required=True)
    a = ap.parse_args(argv)
    return build(Path(a.out), Path(a.data))


if __name__ == "__main__":
    sys.exit(main())
