"""Print the demo counselor's replies beside the gold replies on held-out test contexts.

  .venv/bin/python scripts/demo_samples.py [--n 6] [--data DIR]
Uses the bot's own backend and prompts (the embedded default: gemma-3-270m Q4_K_M + the LoRA GGUF).
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.backends import LlamaBackend  # noqa: E402
from bot.config import Settings  # noqa: E402
from kokoro.dataset import load  # noqa: E402
from kokoro.prompts import COUNSELOR_SYSTEM, counselor_prompt  # noqa: E402
from kokoro.splits import counselor_split  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=6)
ap.add_argument("--data", default=os.environ.get("KOKOROCHAT_DIR", "../shared/data/kokorochat"))
ap.add_argument("--seed", type=int, default=3)
a = ap.parse_args()
s = Settings.load(environ={}, n_threads=2)
s.resolve_demo()
b = LlamaBackend(s)
ds = load(a.data)
by = {d.id: d for d in ds}
rng = random.Random(a.seed)
test = [by[i] for i in counselor_split(ds, "full").test]
for d in rng.sample(test, a.n):
    m = d.merged()
    i = rng.choice([k for k, t in enumerate(m) if t.role == "counselor" and k > 4 and m[k - 1].role == "client"])
    prompt, _ = counselor_prompt(
        b.fmt,
        m[:i],
        s.system_prompt or COUNSELOR_SYSTEM,
        max_tokens=s.n_ctx - s.max_tokens,
        count_tokens=b.count_tokens,
        max_turns=s.history_turns,
    )
    reply = b.generate(d.id, prompt)
    print(
        f"| {m[i - 1].text.replace(chr(10), ' ')[:80]} | {m[i].text.replace(chr(10), ' ')[:80]} | "
        f"{reply.replace(chr(10), ' ')[:80]} |"
    )
