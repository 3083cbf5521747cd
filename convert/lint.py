"""Lint a GGUF against the training run: same chat template, same end-of-turn / EOS tokens.

A lost template or a wrong stop token is the classic "fine in the notebook, garbage after GGUF"
failure; this makes it loud.
"""

from __future__ import annotations

from pathlib import Path


def gguf_metadata(path: Path) -> dict:
    """Scalar and string metadata of a GGUF, plus the token list under 'tokens'."""
    from gguf import GGUFReader, GGUFValueType

    r = GGUFReader(str(path))
    out: dict = {}
    for key, f in r.fields.items():
        if not f.types:
            continue
        if f.types[0] == GGUFValueType.STRING:
            out[key] = bytes(f.parts[f.data[0]]).decode("utf-8")
        elif f.types[0] == GGUFValueType.ARRAY:
            if key == "tokenizer.ggml.tokens":
                out["tokens"] = [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]
        else:
            out[key] = f.parts[f.data[0]][0].item()
    return out


def lint(path: Path, run: dict, adapter: bool = False) -> list[str]:
    """Problems found (empty = clean)."""
    md = gguf_metadata(path)
    problems = []
    if adapter:
        if md.get("adapter.type") != "lora":
            problems.append(f"{path.name}: adapter.type is {md.get('adapter.type')!r}, expected 'lora'")
        return problems
    fmt = run["chat_format"]
    template = md.get("tokenizer.chat_template")
    if template is None:
        problems.append(f"{path.name}: no chat template in the GGUF (llama.cpp would fall back to another format)")
    elif template != fmt["template"]:
        problems.append(f"{path.name}: chat template differs from the one training used ({fmt['name']})")
    tokens = md.get("tokens", [])
    eot = md.get("tokenizer.ggml.eot_token_id")
    if eot != run["eot_token_id"]:
        problems.append(
            f"{path.name}: end-of-turn id is {eot}, training used {run['eot_token_id']} ({fmt['eot_token']!r})"
        )
    elif tokens and tokens[eot] != fmt["eot_token"]:
        problems.append(f"{path.name}: token {eot} is {tokens[eot]!r}, not the end-of-turn {fmt['eot_token']!r}")
    eos = md.get("tokenizer.ggml.eos_token_id")
    if run.get("eos_token_id") is not None and eos != run["eos_token_id"]:
        problems.append(f"{path.name}: EOS id is {eos}, training's tokenizer has {run['eos_token_id']}")
    return problems
