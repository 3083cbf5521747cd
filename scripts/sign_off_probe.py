"""How the rule that a counselor reply must not end the session (kokoro.memory.ends_session) reads
KokoroChat's human counselors: the share of sessions whose last three counselor utterances take
leave (where a human counselor does close: the rule should see it) and the share of utterances in
the first 60 % of a session it reads as ending (where nobody closes: what a cut would cost).
The same two figures for the clients' own leave-taking (kokoro.memory.takes_leave, on each client
utterance): their last three utterances, and their utterances of the first 60 % (where a false
reading would offer the end, or close a flagged session, too early). And the counselor utterances with
the role-play platform's scheduling (「お時間になりましたら」), by where in a session they fall.

Both rules were written from the sessions with ids 1-2000 and checked once on 4001-6589; both
ranges are printed. Prints figures; writes nothing; no dialogue text is printed.

    python scripts/sign_off_probe.py --data DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kokoro.dataset import load  # noqa: E402
from kokoro.memory import (  # noqa: E402
    Facts,  # noqa: E402
    ends_session,
    problems,
    takes_leave,
)

RANGES = {"written from (ids 1-2000)": (1, 2000), "checked on (ids 4001-6589)": (4001, 6589)}
MIN_UTTERANCES = 10  # counselor utterances a session needs to have a beginning and an end
LAST = 3
EARLY = 0.6


def figures(dialogues, role: str = "counselor", rule=ends_session) -> dict:
    sessions = closing = early = early_ending = 0
    for d in dialogues:
        said = [t.text for t in d.turns if t.role == role]
        if len(said) < MIN_UTTERANCES:
            continue
        sessions += 1
        closing += any(rule(t) for t in said[-LAST:])
        first = said[: int(len(said) * EARLY)]
        early += len(first)
        early_ending += sum(rule(t) for t in first)
    return {"sessions": sessions, "closing": closing, "early": early, "early_ending": early_ending}


def scheduling(dialogues) -> dict:
    """Counselor utterances with the role-play platform's scheduling (kokoro.memory.problems:
    ``schedules``, 「お時間になりましたら」), and how many of them fall in a session's first 10 %."""
    said = n = first = 0
    for d in dialogues:
        c = [t.text for t in d.turns if t.role == "counselor"]
        for i, t in enumerate(c):
            n += 1
            if "schedules" in problems(t, Facts()):
                said += 1
                first += i < len(c) * 0.1
    return {"utterances": n, "scheduling": said, "in_first_tenth": first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="KokoroChat's dialogue directory (default: config / environment)")
    args = ap.parse_args()
    dialogues = load(args.data)
    for name, (lo, hi) in RANGES.items():
        part = [d for d in dialogues if d.id.isdigit() and lo <= int(d.id) <= hi]
        for role, rule in (("counselor", ends_session), ("client", takes_leave)):
            f = figures(part, role, rule)
            print(
                f"{name}: {f['sessions']} sessions; leave taken in the last {LAST} {role} utterances "
                f"{f['closing'] / f['sessions']:.1%}; utterances of the first {EARLY:.0%} read as taking leave "
                f"{f['early_ending']} / {f['early']} = {f['early_ending'] / f['early']:.2%}"
            )
        g = scheduling(part)
        print(
            f"{name}: counselor utterances with the platform's scheduling {g['scheduling']} / {g['utterances']}, "
            f"{g['in_first_tenth']} of them in a session's first 10 %"
        )


if __name__ == "__main__":
    main()
