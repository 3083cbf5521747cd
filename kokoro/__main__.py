"""python -m kokoro stats|splits — dataset statistics and the paper's split id lists."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .dataset import DATA_ENV, DataError, load_dir
from .splits import all_splits
from .stats import compute_stats, ldd_by_role


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kokoro", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    data_help = f"KokoroChat folder (a clone's root or its kokorochat_dialogues/); default ${DATA_ENV}"
    s = sub.add_parser("stats", help="dataset statistics (paper Table 3, split and flag counts)")
    s.add_argument("--data", help=data_help)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--lenient", action="store_true", help="skip bad files and report how many")
    sp = sub.add_parser("splits", help="write the paper's splits as id lists (JSON)")
    sp.add_argument("--data", help=data_help)
    sp.add_argument("--out", required=True, help="output JSON file")
    return p


def _load(args):
    res = load_dir(args.data, lenient=getattr(args, "lenient", False))
    if res.errors:
        print(f"skipped {res.skipped} bad file(s); first: {res.errors[0]}", file=sys.stderr)
    return res.dialogues


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        dialogues = _load(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command == "stats":
        st = compute_stats(dialogues) | ldd_by_role(dialogues)
        if args.json:
            print(json.dumps(st, ensure_ascii=False))
        else:
            width = max(map(len, st))
            for k, v in st.items():
                if isinstance(v, dict):
                    continue
                print(f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v:.2f}")
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(all_splits(dialogues), indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
