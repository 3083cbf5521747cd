"""Score saved simulated sessions again, with other scorers: the bot's counselor against the human
counselor of the same replayed dialogue (as far as the replay went), as `evaluation simulate`
scores them, without generating anything again.

    .venv/bin/python scripts/score_sim.py runs/sim-after/sessions.jsonl --cpu-scorer A [--cpu-scorer B] [--data D]

Prints one JSON line per scorer: mean predicted total of the bot's sessions, of the human
counselors' on the same client turns, how many sessions scored below / above their human, the
mean paired difference with a 95 % bootstrap interval (2,000 resamples, seeded), and the two-sided
sign test of below against above."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import random

    from evaluation.humaneval.report import sign_test
    from evaluation.scores import load_scorer
    from evaluation.simulate import ReplayClient, retime, seen_client_turns
    from kokoro.dataset import Turn, load
    from kokoro.items import total_score

    p = argparse.ArgumentParser()
    p.add_argument("sessions")
    p.add_argument("--cpu-scorer", action="append", required=True)
    p.add_argument("--data")
    p.add_argument(
        "--blank-times",
        action="store_true",
        help="score both without times (text alone) instead of the bot's session on the dialogue's clock",
    )
    a = p.parse_args()
    by = {d.id: d for d in load(a.data)}
    records = [json.loads(x) for x in Path(a.sessions).read_text(encoding="utf-8").splitlines()]
    bot, human = [], []
    for r in records:
        turns = [Turn(t["role"], t.get("time", ""), t["text"]) for t in r["turns"]]
        h = ReplayClient(by[r["client"]["dialogue"]]).human(seen_client_turns(turns))
        if a.blank_times:
            bot.append([Turn(t.role, "", t.text) for t in turns])
            human.append([Turn(t.role, "", t.text) for t in h])
        else:  # the bot's session on the dialogue's clock, as `evaluation simulate` scores it
            bot.append(retime(turns, h))
            human.append(h)
    for path in a.cpu_scorer:
        scorer = load_scorer("cpu", path)
        b = [total_score(x) for x in scorer.predict_many(bot)]
        h = [total_score(x) for x in scorer.predict_many(human)]
        diff = [x - y for x, y in zip(b, h)]
        rng = random.Random(0)
        boot = sorted(statistics.fmean(rng.choices(diff, k=len(diff))) for _ in range(2000))
        below, above = sum(d < 0 for d in diff), sum(d > 0 for d in diff)
        print(
            json.dumps(
                {
                    "scorer": path,
                    "sessions": len(b),
                    "bot_mean_total": round(statistics.fmean(b), 1),
                    "human_mean_total": round(statistics.fmean(h), 1),
                    "bot_below_human": below,
                    "bot_above_human": above,
                    "mean_difference": round(statistics.fmean(diff), 1),
                    "difference_ci95": [round(boot[49], 1), round(boot[1949], 1)],
                    "sign_test_p": round(sign_test(below, above), 4),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
