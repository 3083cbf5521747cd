"""A tiny Llama-architecture model and SentencePiece tokenizer, built offline for tests.

The tokenizer is a SentencePiece BPE trained on KokoroChat text with the chat tokens as control
symbols, no dummy prefix, identity normalization and byte fallback: the settings llama.cpp's
converter accepts and tokenizes the same way as transformers (see TOOLCHAIN.md). Shapes are
multiples of 256 so K-quants (Q4_K_M) apply.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Sequence

from kokoro.chat_formats import get_format
from kokoro.dataset import Dialogue
from kokoro.prompts import COUNSELOR_SYSTEM, OPENING_CUE, SCORER_SYSTEM, scorer_instruction, scores_json

CHAT_TOKENS = ["<start_of_turn>", "<end_of_turn>"]
TINY = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)


def _corpus(dialogues: Sequence[Dialogue], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    picked = rng.sample(list(dialogues), min(n, len(dialogues)))
    texts = [t.text for d in picked for t in d.turns]
    fixed = [
        COUNSELOR_SYSTEM,
        SCORER_SYSTEM,
        scorer_instruction(),
        OPENING_CUE,
        "user\n",
        "model\n",
        "相談員: 相談者: ",
        scores_json([0, 1, 2, 3, 4, 5] * 3 + [0, 5]),
    ]
    return texts + fixed * 50


def build_tokenizer(
    dialogues: Sequence[Dialogue], out: Path, vocab_size: int = 2000, n_dialogues: int = 300, seed: int = 0
):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    fmt = get_format("gemma")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(dialogues, n_dialogues, seed)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        control_symbols=CHAT_TOKENS,
        add_dummy_prefix=False,
        byte_fallback=True,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        unk_piece="<unk>",
        bos_piece=fmt.bos_token,
        eos_piece=fmt.eos_token,
        pad_piece="<pad>",
        num_threads=1,
        minloglevel=2,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(model.getvalue())
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "add_prefix_space": False,
                "legacy": False,
                "bos_token": fmt.bos_token,
                "eos_token": fmt.eos_token,
                "unk_token": "<unk>",
                "pad_token": "<pad>",
                "add_bos_token": False,
                "add_eos_token": False,
                "extra_special_tokens": CHAT_TOKENS,
                "chat_template": fmt.template,
            },
            ensure_ascii=False,
            indent=1,
        )
    )
    tok = AutoTokenizer.from_pretrained(out)
    return tok


def build_tiny_base(dialogues: Sequence[Dialogue], out: Path, seed: int = 0) -> Path:
    """Write a tiny random-init Llama + tokenizer into ``out`` (a HF model folder) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    if (out / "config.json").is_file() and (out / "tokenizer.model").is_file():
        return out
    tok = build_tokenizer(dialogues, out, seed=seed)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        **TINY,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    # transformers 5 does not write tokenizer.model on save_pretrained; llama.cpp's converter needs it
    assert (out / "tokenizer.model").is_file()
    return out
