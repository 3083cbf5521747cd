"""python -m training counselor|scorer — QLoRA counselor / scorer, or the CPU scorer.

Examples:
  python -m training counselor --preset paper --base PATH/Llama-3.1-Swallow-8B-Instruct-v0.3 \\
      --data DIR --out runs/kokoro-full
  python -m training scorer --preset scorer-paper --base PATH --seed 1 --data DIR --out runs/scorer-s1
  python -m training counselor --preset gemma-270m-cpu --data DIR --out runs/gemma-demo
  python -m training counselor --preset tiny --data DIR --out runs/tiny
  python -m training scorer --preset cpu --data DIR --out runs/cpu-scorer
"""

from __future__ import annotations

import argparse
import json
import sys

from kokoro.dataset import DataError
from kokoro.prompts import ContextTooShort

from .config import PRESETS, ConfigError, build_config, help_text


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (--set NAME=VALUE):\n" + help_text(),
    )
    p.add_argument("task", choices=["counselor", "scorer"])
    p.add_argument("--preset", help=f"one of {sorted(PRESETS)}; scorer also: cpu")
    p.add_argument("--config", help="JSON file of settings")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting")
    p.add_argument("--data", help="KokoroChat folder (default $KOKOROCHAT_DIR)")
    p.add_argument("--out", help="run folder")
    p.add_argument("--base", help="base model: a HF model folder")
    p.add_argument("--subset", choices=["low", "high", "full"], help="counselor training subset")
    p.add_argument("--seed", type=int, help="seed (scorer: also the split seed, paper 1-5)")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the run's GPU memory plan (JSON) from the base's config.json on the meta device; loads no weights",
    )
    return p


def _overrides(args) -> dict:
    ov: dict = {}
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        ov[k.strip()] = v
    for name, key in (
        ("data", "data"),
        ("out", "out"),
        ("base", "base_model"),
        ("subset", "subset"),
        ("seed", "seed"),
        ("max_steps", "max_steps"),
        ("device", "device"),
    ):
        if getattr(args, name) is not None:
            ov[key] = getattr(args, name)
    return ov


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.task == "scorer" and args.preset == "cpu":
            from .cpu_scorer import CpuScorerConfig, train_cpu_scorer

            ov = _overrides(args)
            text = {"data", "out", "selection"}
            known = text | {"seed", "limit", "max_features", "min_df", "ngram_max", "coherence", "coherence_prefixes"}
            bad = set(ov) - known
            if bad:
                raise ConfigError(f"the cpu scorer takes only {sorted(known)}; got {sorted(bad)}")
            if ov.get("selection", "loo") not in ("loo", "validation"):
                raise ConfigError(f"selection must be loo or validation, got {ov['selection']!r}")
            cfg = CpuScorerConfig(**{k: (v if k in text else int(v)) for k, v in ov.items()})
            metrics = train_cpu_scorer(cfg)
            print(json.dumps(metrics, ensure_ascii=False))
            return 0
        cfg = build_config(args.task, args.preset, args.config, _overrides(args))
        if args.plan:
            from pathlib import Path

            from .plan import print_plan

            if not cfg.base_model or not (Path(cfg.base_model) / "config.json").is_file():
                raise ConfigError("--plan needs --base DIR holding the base model's config.json (no weights are read)")
            return print_plan(cfg, Path(cfg.base_model))
        from .lm import train

        out = train(cfg)
        print(f"run folder: {out}")
        return 0
    except (ConfigError, DataError, ContextTooShort) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
