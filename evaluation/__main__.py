"""python -m evaluation scores — score-prediction metrics beside baselines and the paper."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kokoro.dataset import DataError


def make_parser():
    p = argparse.ArgumentParser(prog="python -m evaluation")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scores", help="ACC / ACC_soft / MAE of a scorer on the fixed test split")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--model", action="append", help="scorer GGUF (repeat for several seeds); with --endpoint, the model name"
    )
    g.add_argument("--cpu-scorer", action="append", help="CPU scorer folder (repeat for several seeds)")
    s.add_argument("--data", help="KokoroChat folder (default $KOKOROCHAT_DIR)")
    s.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    s.add_argument("--limit", type=int, default=0, help="only the first N test dialogues (smoke runs)")
    s.add_argument("--out", help="report folder (metrics.json, report.md, plots)")
    s.add_argument("--n-ctx", type=int, default=8192)
    s.add_argument(
        "--gpu-layers",
        type=int,
        default=0,
        help="layers offloaded to the GPU (-1 = all; needs a CUDA build of llama-cpp-python)",
    )
    add_endpoint_args(s)
    s.add_argument(
        "--perturb",
        action="store_true",
        help="the perturbation suite instead: does the scorer notice a bad counselor (a sensitivity test)",
    )
    g2 = sub.add_parser("responses", help="BLEU/ROUGE/Distinct of a counselor GGUF on the test set")
    g2.add_argument(
        "--model", required=True, help="counselor GGUF (or the base GGUF with --lora); with --endpoint, the model name"
    )
    add_endpoint_args(g2)
    g2.add_argument("--lora", help="LoRA adapter GGUF applied at run time")
    g2.add_argument("--data", help="KokoroChat folder (default $KOKOROCHAT_DIR)")
    g2.add_argument("--limit", type=int, default=0, help="only the first N counselor turns (smoke runs)")
    g2.add_argument("--out", help="report folder (metrics.json, report.md, replies.jsonl)")
    g2.add_argument("--n-ctx", type=int, default=4096)
    g2.add_argument("--max-tokens", type=int, default=128)
    g2.add_argument("--history-turns", type=int, default=0, help="history window in merged turns (0 = all that fit)")
    g2.add_argument("--chat-format", help="llama3|gemma when the GGUF has no chat template")
    g2.add_argument("--threads", type=int, default=0)
    g2.add_argument(
        "--gpu-layers",
        type=int,
        default=0,
        help="layers offloaded to the GPU (-1 = all; needs a CUDA build of llama-cpp-python)",
    )
    g2.add_argument("--repeat-penalty", type=float, default=1.3, help="llama.cpp repeat penalty (the bot's default)")
    g2.add_argument(
        "--no-repetition-control",
        action="store_true",
        help="without the served controls: the session-level repetition control (kokoro.llm.reply)"
        " and the session-memory rules (kokoro.memory)",
    )
    g2.add_argument("--json", action="store_true")
    sm = sub.add_parser("simulate", help="simulated-client sessions through the bot's session engine, then scored")
    sm.add_argument(
        "--counselor",
        default="demo",
        help="counselor GGUF, or 'demo' (the embedded default); with --counselor-endpoint, the model name",
    )
    sm.add_argument("--lora", help="counselor LoRA GGUF")
    add_endpoint_args(sm, prefix="counselor-")
    sm.add_argument("--counselor-chat-format", help="llama3|gemma for a counselor endpoint in completions mode")
    sm.add_argument(
        "--client",
        default="replay",
        help="'replay' (KokoroChat test clients), a folder of client scripts (evaluation/clients:"
        " one message per line, each file a session) or a client GGUF (App. E prompt)",
    )
    sm.add_argument("--client-lora")
    add_endpoint_args(sm, prefix="client-")
    sm.add_argument("--client-chat-format")
    g3 = sm.add_mutually_exclusive_group()
    g3.add_argument("--cpu-scorer", help="CPU scorer folder (default: the bot's, models/cpu-scorer)")
    g3.add_argument("--scorer-model", help="scorer GGUF")
    sm.add_argument("--data")
    sm.add_argument("--n", type=int, default=5, help="sessions")
    sm.add_argument("--skip", type=int, default=0, help="replay the counselor-test dialogues from this one on")
    sm.add_argument("--max-turns", type=int, default=20)
    sm.add_argument("--n-ctx", type=int, default=2048)
    sm.add_argument("--max-tokens", type=int, default=96)
    sm.add_argument("--threads", type=int, default=2)
    sm.add_argument(
        "--gpu-layers",
        type=int,
        default=0,
        help="layers offloaded to the GPU (-1 = all; needs a CUDA build of llama-cpp-python)",
    )
    sm.add_argument(
        "--no-repetition-control",
        action="store_true",
        help="the bot's generation without session-level repetition control (for before/after figures)",
    )
    sm.add_argument("--out")
    j = sub.add_parser("judge", help="Table 7: simulated dialogues judged by an LLM on four dimensions (0-5)")
    j.add_argument("--sessions", action="append", required=True, help="sessions.jsonl of `simulate` (repeat per model)")
    j.add_argument("--name", action="append", help="row name for each --sessions (default: the counselor's)")
    j.add_argument("--model", required=True, help="judge: a GGUF, or with --endpoint the model name (gpt-4o)")
    add_endpoint_args(j)
    j.add_argument("--chat-format", help="llama3|gemma when the judge GGUF has no chat template")
    j.add_argument("--threads", type=int, default=0)
    j.add_argument("--out")
    j.add_argument("--json", action="store_true")
    from .humaneval.cli import add_parser as add_humaneval

    add_humaneval(sub, add_endpoint_args)
    r = sub.add_parser("rescore", help="re-score the bot's logged sessions (resumable)")
    r.add_argument("--db", required=True, help="the bot's SQLite file")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--cpu-scorer", help="CPU scorer folder")
    g.add_argument("--model", help="scorer GGUF")
    r.add_argument("--since", help="only sessions that ended on or after this date (YYYY-MM-DD)")
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--nightly", metavar="HH:MM", help="keep running and re-score every day at this time")
    r.add_argument("--gpu-layers", type=int, default=0, help="scorer GGUF layers offloaded to the GPU (-1 = all)")
    return p


def run_rescore(args) -> int:
    from pathlib import Path

    from .rescore import nightly, rescore
    from .scores import load_scorer

    if not Path(args.db).is_file():
        print(f"error: no bot database at {args.db}", file=sys.stderr)
        return 2
    scorer = load_scorer(
        "cpu" if args.cpu_scorer else "gguf", args.cpu_scorer or args.model, n_gpu_layers=args.gpu_layers
    )
    job = lambda: print(json.dumps(rescore(args.db, scorer, args.since, args.limit)), flush=True)
    if args.nightly:
        nightly(args.nightly, job).start()
    else:
        job()
    return 0


def run_scores(args) -> int:
    """Agreement with raters (Table 5/8 layout), or with --perturb the sensitivity suite."""
    from kokoro.cpu_scorer import ScorerArtifactError

    if args.perturb:
        from .perturbation import evaluate, markdown, summary
    else:
        from .scores import evaluate, markdown, summary
    from .endpoint import EndpointError, EndpointScorer

    if args.endpoint:
        scorers = [("endpoint", EndpointScorer(endpoint_from(args, m))) for m in args.model or []]
    else:
        scorers = [("cpu", p) for p in args.cpu_scorer or []] + [("gguf", p) for p in args.model or []]
    try:
        r = evaluate(
            scorers,
            args.data,
            args.limit,
            Path(args.out) if args.out else None,
            args.n_ctx,
            progress=not args.json,
            n_gpu_layers=args.gpu_layers,
        )
    except (DataError, ScorerArtifactError, FileNotFoundError, ValueError, EndpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary(r), ensure_ascii=False) if args.json else markdown(r))
    return 0


def add_endpoint_args(p, prefix: str = "") -> None:
    """--endpoint URL and its options: a model behind an OpenAI-compatible server (evaluation.endpoint)."""
    p.add_argument(f"--{prefix}endpoint", help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument(
        f"--{prefix}mode",
        choices=["chat", "completions"],
        default="chat",
        help="chat-completions with kokoro's messages (default), or completions with the prompt rendered in "
        "--chat-format (local servers)",
    )
    p.add_argument(f"--{prefix}api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument(f"--{prefix}concurrency", type=int, default=4, help="requests in flight at once")
    p.add_argument(
        f"--{prefix}cache",
        default=str(Path.home() / ".cache" / "kokoro-line" / "endpoint-cache.sqlite3"),
        help="answers stored by request (a rerun sends nothing it already has)",
    )


def endpoint_from(args, model: str, prefix: str = ""):
    from .endpoint import Endpoint

    g = lambda k: getattr(args, (prefix + k).replace("-", "_"))
    return Endpoint(
        g("endpoint"),
        model,
        mode=g("mode"),
        api_key_env=g("api_key_env"),
        cache=g("cache"),
        concurrency=g("concurrency"),
    )


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    from kokoro.cpu_scorer import ScorerArtifactError

    if args.cmd == "responses":
        from .endpoint import EndpointError
        from .responses import evaluate as ev_responses
        from .responses import markdown as md_responses

        try:
            if args.endpoint:
                from .responses import evaluate_endpoint

                r = evaluate_endpoint(
                    endpoint_from(args, args.model),
                    args.data,
                    args.limit,
                    Path(args.out) if args.out else None,
                    args.max_tokens,
                    args.history_turns,
                    args.chat_format,
                    repetition=not args.no_repetition_control,
                )
            else:
                r = ev_responses(
                    args.model,
                    args.lora,
                    args.data,
                    args.limit,
                    Path(args.out) if args.out else None,
                    n_ctx=args.n_ctx,
                    max_tokens=args.max_tokens,
                    history_turns=args.history_turns,
                    chat_format=args.chat_format,
                    threads=args.threads,
                    progress=not args.json,
                    n_gpu_layers=args.gpu_layers,
                    repeat_penalty=args.repeat_penalty,
                    repetition=not args.no_repetition_control,
                )
        except (DataError, ValueError, EndpointError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(
            json.dumps(
                {
                    k: r[k]
                    for k in (
                        "model",
                        "retrieval",
                        "n",
                        "mean_chars",
                        "empty_replies",
                        "cut_at_max_tokens",
                        "second_tries",
                        "evaluated_over_naive",
                        "resumed_dialogues",
                        "requests",
                        "cached",
                        "signature",
                    )
                    if k in r
                },
                ensure_ascii=False,
            )
            if args.json
            else md_responses(r)
        )
        return 0
    if args.cmd == "simulate":
        from bot.config import REPO

        from .endpoint import EndpointError
        from .simulate import run as simulate

        if not (args.cpu_scorer or args.scorer_model):
            args.cpu_scorer = str(REPO / "models" / "cpu-scorer")

        try:
            r = simulate(
                args.counselor,
                args.lora,
                args.client,
                "cpu" if args.cpu_scorer else "gguf",
                args.cpu_scorer or args.scorer_model,
                args.data,
                args.n,
                args.max_turns,
                out=Path(args.out) if args.out else None,
                threads=args.threads,
                n_ctx=args.n_ctx,
                n_gpu_layers=args.gpu_layers,
                max_tokens=args.max_tokens,
                client_lora=args.client_lora,
                client_chat_format=args.client_chat_format,
                repetition=not args.no_repetition_control,
                client_endpoint=endpoint_from(args, args.client, "client-") if args.client_endpoint else None,
                counselor_endpoint=(
                    endpoint_from(args, args.counselor, "counselor-") if args.counselor_endpoint else None
                ),
                counselor_chat_format=args.counselor_chat_format,
                skip=args.skip,
            )
        except (DataError, ScorerArtifactError, ValueError, EndpointError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(
            json.dumps(
                {
                    k: r[k]
                    for k in (
                        "n",
                        "mean_total",
                        "human_mean_total",
                        "mean_client_turns",
                        "conversation",
                        "generation",
                        "seconds",
                    )
                },
                ensure_ascii=False,
            )
        )
        return 0
    if args.cmd == "judge":
        from .endpoint import EndpointError
        from .judge import EndpointJudge, GgufJudge
        from .judge import markdown as md_judge
        from .judge import run as run_judge

        try:
            judge = (
                EndpointJudge(endpoint_from(args, args.model))
                if args.endpoint
                else GgufJudge(args.model, args.chat_format, threads=args.threads)
            )
            r = run_judge([Path(f) for f in args.sessions], judge, args.name, Path(args.out) if args.out else None)
        except (EndpointError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(r, ensure_ascii=False) if args.json else md_judge(r))
        return 0
    if args.cmd == "humaneval":
        from .humaneval.cli import run as run_humaneval

        return run_humaneval(args, endpoint_from)
    if args.cmd == "rescore":
        try:
            return run_rescore(args)
        except ScorerArtifactError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return run_scores(args)


if __name__ == "__main__":
    sys.exit(main())
