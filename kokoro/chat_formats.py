"""Chat templates and their rendering — the same Jinja semantics as transformers'
``apply_chat_template`` and llama-cpp-python's Jinja2 formatter, without importing either.

A ChatFormat is what a model needs to turn messages into text: its Jinja template, its BOS/EOS
strings and the end-of-turn string that ends an assistant reply (the stop token). Rendered text
already holds BOS when the template writes it: tokenize it WITHOUT adding special tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    """A chat template that cannot render these messages."""


class _Generation(Extension):
    """Accept ``{% generation %}…{% endgeneration %}`` (used for assistant masks) as a no-op."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_pass"), [], [], body).set_lineno(lineno)

    def _pass(self, caller):
        return caller()


def _raise(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"chat template does not parse: {e}") from None


@dataclass(frozen=True)
class ChatFormat:
    name: str
    template: str
    eot_token: str  # emitted by the model at the end of its turn; the stop string
    bos_token: str = ""
    eos_token: str = ""
    extra_stops: tuple[str, ...] = field(default=())

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        try:
            return _compile(self.template).render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except jinja2.TemplateError as e:
            raise TemplateError(f"chat template {self.name!r} failed: {e}") from None

    @property
    def stops(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.eot_token,) + self.extra_stops))

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "template": self.template,
            "eot_token": self.eot_token,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "extra_stops": list(self.extra_stops),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ChatFormat":
        return cls(
            d["name"],
            d["template"],
            d["eot_token"],
            d.get("bos_token", ""),
            d.get("eos_token", ""),
            tuple(d.get("extra_stops", ())),
        )


# Llama 3 / 3.1 style (Llama-3.1-Swallow-8B-Instruct). A model's own template, when it has one,
# is read from its tokenizer and used instead (see ChatFormat.from_dict / training).
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# Gemma style. The system prompt is folded into the first user turn, as Gemma's own template
# does; turns need not alternate (gemma-3-270m is a base model with no template of its own).
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] | trim %}"
    "{% else %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n"
    "{% if ns.system and role == 'user' %}{{ ns.system }}\n\n{% set ns.system = '' %}{% endif %}"
    "{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

FORMATS: dict[str, ChatFormat] = {
    "llama3": ChatFormat(
        "llama3",
        LLAMA3_TEMPLATE,
        "<|eot_id|>",
        "<|begin_of_text|>",
        "<|end_of_text|>",
        ("<|end_of_text|>", "<|eom_id|>"),
    ),
    "gemma": ChatFormat("gemma", GEMMA_TEMPLATE, "<end_of_turn>", "<bos>", "<eos>", ("<eos>",)),
}


def get_format(name: str) -> ChatFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise TemplateError(f"unknown chat format {name!r}; known: {sorted(FORMATS)}") from None


def from_gguf(llm, fallback: str | None = None) -> ChatFormat:
    """The chat format a llama.cpp model carries in its metadata (template, BOS/EOS, end-of-turn),
    or the named ``fallback`` when the GGUF has no template."""
    md = llm.metadata
    template = md.get("tokenizer.chat_template")
    if not template:
        if not fallback:
            raise TemplateError(
                "the GGUF has no chat template; convert it with `python -m convert` "
                "or name the chat format (llama3|gemma)"
            )
        return get_format(fallback)

    def token(key: str) -> str:
        i = md.get(key)
        return llm.detokenize([int(i)], special=True).decode("utf-8", "replace") if i is not None else ""

    eos = token("tokenizer.ggml.eos_token_id")
    return ChatFormat(
        "gguf", template, token("tokenizer.ggml.eot_token_id") or eos, token("tokenizer.ggml.bos_token_id"), eos
    )
