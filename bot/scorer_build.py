"""The post-session scorer on a fresh machine: nothing holding KokoroChat text may be committed, so
the CPU scorer is built from the user's own copy of KokoroChat the first time `bot chat` runs
(once, with a progress bar), into the scorer folder the bot loads (``models/cpu-scorer``)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from kokoro.dataset import DATA_ENV, KNOWN_PLACES, find_data_dir

LIMIT_ENV = "KOKORO_SCORER_BUILD_LIMIT"  # dialogues to build from (a quick smoke build); unset = all
BUILD_MINUTES = 28  # a full build on 2 cores (README: CPU scorer), said before it starts


def ensure_scorer(path: str | None, data=None, out=sys.stderr) -> str:
    """'ready' when the scorer exists, 'built' when it was built now, 'off' when it cannot be (no
    scorer configured, a scorer GGUF that is missing, no KokoroChat found, or the build was
    interrupted). Says which on ``out``; the client is told at the session's end (feedback.py)."""
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
    return _build(p, found, out)


def _build(p: Path, data: Path, out) -> str:
    from tqdm import tqdm

    from training.cpu_scorer import STAGES, CpuScorerConfig, train_cpu_scorer

    limit = int(os.environ.get(LIMIT_ENV) or 0)
    print(
        f"Building the post-session feedback scorer from {data} into {p} — first run only, about "
        f"{BUILD_MINUTES} minutes on 2 cores (Ctrl-C skips it: feedback is then off for this chat).",
        file=out,
        flush=True,
    )
    tmp = p.with_name(p.name + ".partial")  # a build killed half-way never looks like a scorer
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.time()
    try:
        with tqdm(total=len(STAGES), file=out, desc="feedback scorer", unit="stage") as bar:
            seen: list[str] = []

            def stage(name: str) -> None:
                if seen:
                    bar.update(1)
                seen.append(name)
                bar.set_postfix_str(name)

            result = train_cpu_scorer(CpuScorerConfig(data=str(data), out=str(tmp), limit=limit), progress=stage)
            bar.update(1)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        print("scorer build interrupted: post-session feedback is off for this chat", file=out)
        return "off"
    p.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, p)
    print(
        f"feedback scorer ready in {p} ({time.time() - t0:.0f} s; on its test split ACC {result['acc']}, "
        f"ACC_soft {result['acc_soft']}, MAE {result['mae']})",
        file=out,
        flush=True,
    )
    return "built"


def _note_if_older(p: Path, out) -> None:
    """A CPU scorer built by an older version still scores; say that a rebuild would read more."""
    import json

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
