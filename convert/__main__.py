"""python -m convert RUN_DIR --out DIR — merge → GGUF → quantize → lint → parity.

RUN_DIR/adapter + base ──merge (16/32-bit)──► DIR/hf/ ──llama.cpp converter──► DIR/model-f16.gguf
    ──quantize──► DIR/model-q8_0.gguf …     RUN_DIR/adapter ──► DIR/adapter-f16.gguf (runtime LoRA)
Then every GGUF is linted (chat template, end-of-turn, EOS) and checked for parity against the
merged HF model; DIR/parity.json says "passed": true or false and the exit status follows it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kokoro.dataset import DataError, load
from kokoro.splits import sort_ids

from . import quant_gap
from .lint import lint
from .llamacpp import ConvertError, converter_dir, llama_cpp_python_version, run_script
from .merge import base_params_bytes, check_disk, merge, read_run
from .parity import DEFAULT_MIN_TOP1, ParityMemoryError, check
from .quantize import parse_quants, quantize


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", help="run folder made by `python -m training` (adapter/ + run.json)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quant", default="q8_0", help="comma-separated quantizations (q8_0,q4_k_m,…); '' for none")
    p.add_argument("--base", help="base HF model folder (default: the one in run.json)")
    p.add_argument(
        "--llama-cpp", help="a llama.cpp checkout to convert with (default: the one llama-cpp-python vendors)"
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="merge dtype (auto: float32 under 1B parameters, else bfloat16)",
    )
    p.add_argument("--data", help="KokoroChat folder for parity prompts (default $KOKOROCHAT_DIR or run.json's)")
    p.add_argument("--parity-prompts", type=int, default=8, help="held-out prompts for the logit checks")
    p.add_argument("--n-ctx", type=int, default=512, help="context for parity prompts")
    p.add_argument("--min-top1", default="", help="override thresholds, e.g. f16=0.99,q8_0=0.9")
    p.add_argument("--max-token-mismatches", type=int, default=0, help="allowed tokenization mismatches")
    p.add_argument("--no-parity", action="store_true", help="skip the parity checks (lint still runs)")
    p.add_argument(
        "--no-quant-gap",
        action="store_true",
        help="skip the trained 4-bit + adapter vs merged comparison (run where the training ran)",
    )
    p.add_argument("--gpu-layers", type=int, default=0, help="parity: GGUF layers offloaded to the GPU (-1 = all)")
    p.add_argument("--threads", type=int, default=0, help="parity: CPU threads (default: all)")
    p.add_argument(
        "--lora-base",
        help="also check the adapter GGUF on this base GGUF (e.g. the quantized base a "
        "deployment serves it on); threshold: --min-top1 lora_base=… (default 0.75)",
    )
    p.add_argument(
        "--base-gguf",
        default="auto",
        choices=["auto", "yes", "no"],
        help="also convert the unmerged base, to check adapter GGUF + base GGUF (runtime LoRA) "
        "against the merged model (auto: bases under 2 GB)",
    )
    return p


def thresholds(spec: str) -> dict:
    out = dict(DEFAULT_MIN_TOP1)
    for part in filter(None, (s.strip() for s in spec.split(","))):
        k, _, v = part.partition("=")
        try:
            out[k.strip().lower()] = float(v)
        except ValueError:
            raise ConvertError(f"--min-top1 takes NAME=FRACTION pairs, got {part!r}") from None
    return out


def convert(args) -> dict:
    started = time.time()
    run_dir, out = Path(args.run), Path(args.out)
    run = read_run(run_dir)
    base = Path(args.base or run["base_model"])
    quants = parse_quants(args.quant)
    mins = thresholds(args.min_top1)
    llama_dir = converter_dir(args.llama_cpp)
    check_disk(base, out, len(quants))
    dtype = args.dtype
    if dtype == "auto":
        dtype = "float32" if base_params_bytes(base) < 4 * 10**9 else "bfloat16"
    print(f"merge: {run_dir}/adapter into {base} ({dtype})", file=sys.stderr)
    hf = merge(run, run_dir, base, out / "hf", dtype)
    tpl = out / "chat_template.jinja"
    tpl.write_text(run["chat_format"]["template"], encoding="utf-8")

    def to_gguf(src: Path, dst: Path) -> Path:
        """llama.cpp's converter, then the training chat template and end-of-turn into the metadata."""
        raw = dst.with_name(dst.name + ".raw")
        run_script(
            llama_dir / "convert_hf_to_gguf.py", [str(src), "--outfile", str(raw), "--outtype", "f16"], llama_dir
        )
        run_script(
            llama_dir / "gguf-py" / "gguf" / "scripts" / "gguf_new_metadata.py",
            [
                str(raw),
                str(dst),
                "--chat-template-file",
                str(tpl),
                "--special-token",
                "eot",
                run["chat_format"]["eot_token"],
                "--force",
            ],
            llama_dir,
        )
        raw.unlink()
        return dst

    print("convert: HF → GGUF f16", file=sys.stderr)
    f16 = to_gguf(hf, out / "model-f16.gguf")
    outputs = {"f16": f16}
    for q in quants:
        print(f"quantize: {q}", file=sys.stderr)
        outputs[q] = quantize(f16, out / f"model-{q}.gguf", q)
    adapter = out / "adapter-f16.gguf"
    run_script(
        llama_dir / "convert_lora_to_gguf.py",
        [str(run_dir / "adapter"), "--base", str(base), "--outfile", str(adapter), "--outtype", "f16"],
        llama_dir,
    )
    base_gguf = None
    if args.base_gguf == "yes" or args.base_gguf == "auto" and base_params_bytes(base) < 2 * 10**9:
        base_gguf = to_gguf(base, out / "base-f16.gguf")
    problems = {name: lint(p, run) for name, p in outputs.items()}
    problems["adapter"] = lint(adapter, run, adapter=True)
    if base_gguf:
        problems["base"] = lint(base_gguf, run)
    report = {
        "passed": not any(problems.values()),
        "lint": problems,
        "thresholds": {
            "max_tokenization_mismatches": args.max_token_mismatches,
            "min_top1": {k: mins.get(k) for k in outputs},
        },
        "outputs": {k: str(v) for k, v in outputs.items()} | {"adapter": str(adapter)},
        "parity": {},
    }
    if not args.no_parity:
        dev = {"gpu_layers": args.gpu_layers, "threads": args.threads}
        dialogues = load(args.data or run.get("settings", {}).get("data"))
        by = {d.id: d for d in dialogues}
        held = [by[i] for i in sort_ids(run["split"]["test"]) if i in by]
        for name, path in outputs.items():
            print(f"parity: {name}", file=sys.stderr)
            r = check(hf, path, run, held, args.parity_prompts, args.n_ctx, **dev)
            r["passed"] = r["tokenization_mismatches"] <= args.max_token_mismatches and r["top1_agreement"] >= mins.get(
                name, 0.0
            )
            report["parity"][name] = r
        if base_gguf:
            print("parity: base-f16 + adapter (runtime LoRA)", file=sys.stderr)
            r = check(hf, adapter, run, held, args.parity_prompts, args.n_ctx, lora=adapter, base_gguf=base_gguf, **dev)
            r["passed"] = (
                r["tokenization_mismatches"] <= args.max_token_mismatches and r["top1_agreement"] >= mins["f16"]
            )
            report["parity"]["adapter"] = r
            report["outputs"]["base"] = str(base_gguf)
        if args.lora_base:
            print(f"parity: {args.lora_base} + adapter", file=sys.stderr)
            r = check(
                hf,
                adapter,
                run,
                held,
                args.parity_prompts,
                args.n_ctx,
                lora=adapter,
                base_gguf=Path(args.lora_base),
                **dev,
            )
            r["passed"] = r["tokenization_mismatches"] <= args.max_token_mismatches and r["top1_agreement"] >= mins.get(
                "lora_base", 0.75
            )
            r["base"] = str(args.lora_base)
            report["parity"]["lora_base"] = r
        report["passed"] = report["passed"] and all(r["passed"] for r in report["parity"].values())
        if quant_gap.applies(run) and not args.no_quant_gap:
            report["quantization_gap"] = measure_gap(hf, run_dir, base, run, held, args)
    settings = {
        "run": str(run_dir.resolve()),
        "base": str(base.resolve()),
        "dtype": dtype,
        "quants": quants,
        "llama_cpp_dir": str(llama_dir),
        "llama_cpp_python": llama_cpp_python_version(),
        "chat_format": run["chat_format"]["name"],
        "eot_token_id": run["eot_token_id"],
        "parity_prompts": args.parity_prompts,
        "n_ctx": args.n_ctx,
        "seconds": round(time.time() - started, 1),
    }
    report["settings"] = settings
    (out / "parity.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "convert.json").write_text(
        json.dumps(settings | {"training_run": run.get("settings")}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8",
    )
    (out / "parity.md").write_text(summary(report), encoding="utf-8")
    return report


def measure_gap(hf: Path, run_dir: Path, base: Path, run: dict, held, args) -> dict:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "bitsandbytes is not installed here; run convert where the training ran"}
    print("parity: trained 4-bit base + adapter vs merged (the quantization gap of merging)", file=sys.stderr)
    return quant_gap.check_gap(hf, run_dir, base, run, held, args.parity_prompts, args.n_ctx, threads=args.threads)


def summary(report: dict) -> str:
    lines = [
        f"# Conversion parity: {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        "| output | lint | tokenization mismatches | top-1 agreement | max logit diff | greedy match | passed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in list(report["outputs"]) + [k for k in report["parity"] if k not in report["outputs"]]:
        lint_ok = "ok" if not report["lint"].get(name) else "; ".join(report["lint"][name])
        r = report["parity"].get(name)
        if r:
            lines.append(
                f"| {name} | {lint_ok} | {r['tokenization_mismatches']}/{r['tokenization_texts']} | "
                f"{100 * r['top1_agreement']:.1f} % | {r['max_abs_logit_diff']:.4f} | "
                f"{100 * r['greedy_match']:.0f} % | {r['passed']} |"
            )
        else:
            lines.append(f"| {name} | {lint_ok} | – | – | – | – | – |")
    if "quantization_gap" in report:
        lines += quant_gap.summary(report["quantization_gap"])
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        report = convert(args)
    except (ConvertError, DataError, ParityMemoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
