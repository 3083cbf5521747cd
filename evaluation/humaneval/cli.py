"""`python -m evaluation humaneval prepare | serve | report`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub, add_endpoint_args) -> None:
    h = sub.add_parser("humaneval", help="Figure 5: human pairwise evaluation (prepare, serve to raters, report)")
    hs = h.add_subparsers(dest="step", required=True)
    p = hs.add_parser("prepare", help="sample test histories and collect each source's next counselor turn")
    p.add_argument("--out", required=True, help="comparison folder (holds KokoroChat text: keep it private)")
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a model to compare: NAME=demo | NAME=retrieval | NAME=X.gguf[+LORA.gguf] | NAME=endpoint:MODEL | "
        "NAME=replies:FILE (repeat; Human, the dialogue's counselor, is always a source)",
    )
    p.add_argument("--pair", action="append", metavar="UPPER:LOWER", help="a comparison (default: every pair)")
    p.add_argument("--data", help="KokoroChat folder (default $KOKOROCHAT_DIR)")
    p.add_argument("--dialogues", type=int, default=10, help="test dialogues (the paper: 10)")
    p.add_argument("--histories", type=int, default=10, help="histories per dialogue (the paper: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raters", type=int, default=5, help="rater codes to make (the paper: five counselors)")
    p.add_argument("--chat-format", help="llama3|gemma for a GGUF without a chat template or a completions endpoint")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=128, help="reply length cap, as in `responses`")
    p.add_argument(
        "--history-turns", type=int, default=0, help="history window sent to the models in merged turns (0 = all)"
    )
    add_endpoint_args(p)
    s = hs.add_parser("serve", help="the raters' web app")
    s.add_argument("folder", help="comparison folder made by prepare")
    s.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to reach it from raters' phones on the network")
    s.add_argument("--port", type=int, default=8080)
    r = hs.add_parser("report", help="majority result, Fleiss' kappa, sign tests and the Figure 5-style chart")
    r.add_argument("folder", help="comparison folder with answers")
    r.add_argument("--out", help="report folder (default: the comparison folder)")
    r.add_argument("--json", action="store_true")


def run(args, endpoint_from) -> int:
    from evaluation.endpoint import EndpointError
    from kokoro.dataset import DataError

    try:
        if args.step == "prepare":
            return prepare(args, endpoint_from)
        if args.step == "serve":
            from .app import create_app

            app = create_app(args.folder)
            print(f"humaneval: serving {args.folder} on http://{args.host}:{args.port}/", file=sys.stderr)
            app.run(host=args.host, port=args.port, threaded=True)
            return 0
        from .report import markdown, report

        r = report(args.folder, Path(args.out) if args.out else None)
        print(json.dumps(r, ensure_ascii=False) if args.json else markdown(r))
        return 0
    except (ValueError, DataError, EndpointError) as e:  # PrepareError, FolderError among them
        print(f"error: {e}", file=sys.stderr)
        return 2


def prepare(args, endpoint_from) -> int:
    from .prepare import PrepareError, parse_source, prepare

    sources = [parse_source(s) for s in args.source]
    if not sources:
        raise PrepareError("give at least one --source NAME=SPEC to compare with Human")
    pairs = []
    for x in args.pair or []:
        a, sep, b = x.partition(":")
        if not sep:
            raise PrepareError(f"--pair {x!r}: write UPPER:LOWER, e.g. demo:Human")
        pairs.append((a, b))
    r = prepare(
        sources,
        Path(args.out),
        args.data,
        pairs or None,
        args.dialogues,
        args.histories,
        args.seed,
        args.raters,
        endpoint_for=(lambda m: endpoint_from(args, m)) if args.endpoint else None,
        threads=args.threads,
        chat_format=args.chat_format,
        max_tokens=args.max_tokens,
        history_turns=args.history_turns,
    )
    print(json.dumps(r, ensure_ascii=False))
    return 0
