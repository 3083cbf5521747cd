"""QLoRA / LoRA fine-tuning of a causal LM on kokoro examples — the same code on GPU and CPU.

Multi-GPU: launch this same entry point with ``accelerate launch -m training …`` or
``torchrun --nproc_per_node N -m training …``; the HF Trainer runs DDP.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from kokoro.chat_formats import ChatFormat, TemplateError, get_format
from kokoro.dataset import load
from kokoro.splits import counselor_split, scorer_split

from .config import GEMMA_CPU_PRESETS, ConfigError, TrainConfig, check_environment, world_size
from .examples import ExampleSet, check_examples, collate_left, sources_for
from .report import library_versions, plot_losses, write_json

DIGITS = "012345"


def detect_format(tok, model_type: str, requested: str) -> ChatFormat:
    """The chat format: a named one, or the base model's own template with its end-of-turn."""
    if requested != "auto":
        return get_format(requested)
    template = getattr(tok, "chat_template", None)
    if isinstance(template, str) and template:
        probe = ChatFormat(
            "probe", template, eot_token="", bos_token=tok.bos_token or "", eos_token=tok.eos_token or ""
        )
        msgs = [{"role": "user", "content": "x"}]
        prompt = probe.render(msgs, add_generation_prompt=True)
        full = probe.render(msgs + [{"role": "assistant", "content": "\u2063A\u2063"}])
        tail = full[len(prompt) :].split("\u2063A\u2063", 1)[-1]
        specials = sorted(
            set(tok.all_special_tokens) | set(getattr(tok, "added_tokens_encoder", {})), key=len, reverse=True
        )
        eot = next((s for s in specials if s and tail.startswith(s)), None)
        if eot is None:
            raise TemplateError(
                "cannot find the end-of-turn token in the base model's chat template; "
                "pass --set chat_format=llama3|gemma"
            )
        return ChatFormat("model", template, eot, tok.bos_token or "", tok.eos_token or "")
    if model_type.startswith("gemma"):
        return get_format("gemma")
    if model_type == "llama":
        return get_format("llama3")
    raise ConfigError(
        f"the base model has no chat template and model type {model_type!r} has no default; "
        "pass --set chat_format=llama3|gemma"
    )


def resolve_base(cfg: TrainConfig, dialogues, out: Path) -> Path:
    if cfg.base_model:
        return Path(cfg.base_model)
    if cfg.preset == "tiny":
        from .tiny import build_tiny_base

        return build_tiny_base(dialogues, out / "base", seed=0)
    if cfg.preset in GEMMA_CPU_PRESETS:
        from .gemma import gemma_base

        return gemma_base()
    raise ConfigError(
        "no base model: pass --base PATH (a HF model folder, e.g. "
        "Llama-3.1-Swallow-8B-Instruct-v0.3) or use --preset tiny / gemma-270m-cpu"
    )


def _device(cfg: TrainConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def load_model(cfg: TrainConfig, base: Path, device: str):
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = getattr(torch, cfg.compute_dtype)
    kw: dict = {"dtype": dtype}
    if device == "cuda":
        from accelerate import PartialState

        kw["device_map"] = {"": PartialState().local_process_index}
    else:
        kw["device_map"] = {"": "cpu"}
    if cfg.load_in_4bit:
        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.quant_type, bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(base, **kw)
    if cfg.load_in_4bit:
        disable_cpu_repacking(model)
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return get_peft_model(model, lora_config(cfg))


def lora_config(cfg: TrainConfig):
    """The LoRA training applies (and ``--plan`` plans for)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )


def disable_cpu_repacking(model) -> None:
    """bitsandbytes repacks 4-bit weights for fast CPU inference the first time a layer runs in
    eval mode without grad (e.g. the validation before training), and the repacked kernel has no
    autograd: gradients through the frozen base would then be silently wrong. Keep the training
    layout."""
    import bitsandbytes as bnb

    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False


def count_4bit(model) -> int:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    return sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


def make_trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class KokoroTrainer(Trainer):
        """Loss on target tokens only, computing logits only where targets are."""

        def loss_scale(self, num_items_in_batch) -> int:
            """Under DDP the Trainer sums ``num_items_in_batch`` over ranks
            (``average_tokens_across_devices``) and DDP then averages the gradients over ranks, so
            a loss divided by the global count must be multiplied by the number of processes —
            as transformers' own ``compute_loss`` does — or losses and gradients shrink 1/N."""
            if num_items_in_batch is None or not self.args.average_tokens_across_devices:
                return 1
            return self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1 else self.args.n_gpu

        _eval_sums = torch.zeros(2, dtype=torch.float64)

        def evaluation_loop(self, *args, **kwargs):
            """The validation loss as one token-weighted mean over the whole validation set (summed
            over ranks), not a mean of per-batch means: equal for any batch size or GPU count."""
            self._eval_sums = torch.zeros(2, dtype=torch.float64)
            output = super().evaluation_loop(*args, **kwargs)
            sums = self._eval_sums.to(self.args.device)
            if self.args.world_size > 1:
                import torch.distributed as dist

                dist.all_reduce(sums)
            prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
            if sums[1] > 0 and f"{prefix}_loss" in output.metrics:
                output.metrics[f"{prefix}_loss"] = float(sums[0] / sums[1])
            return output

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels, keep = inputs["labels"], int(inputs["logits_to_keep"])
            out = model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"],
                logits_to_keep=keep,
            )
            logits = out.logits[:, :-1].float()
            lab = labels[:, -keep:][:, 1:]
            total = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), lab.reshape(-1), ignore_index=-100, reduction="sum"
            )
            if not model.training:  # token-weighted validation loss, whatever the batching and world size
                self._eval_sums += torch.stack([total.detach().double(), (lab != -100).sum().double()]).cpu()
            n = num_items_in_batch if num_items_in_batch is not None else (lab != -100).sum()
            loss = total / torch.as_tensor(n, device=total.device).clamp(min=1)
            loss = loss * self.loss_scale(num_items_in_batch)
            if not return_outputs:
                return loss
            pred = torch.full_like(labels, -100)
            pred[:, labels.size(1) - keep + 1 :] = logits.argmax(-1)
            return loss, {"loss": loss, "logits": pred}

    return KokoroTrainer


def digit_metrics(tok):
    import numpy as np

    ids = []
    for d in DIGITS:
        enc = tok(d, add_special_tokens=False).input_ids
        if len(enc) == 1:
            ids.append(enc[0])
    digit_ids = np.array(sorted(set(ids)))

    def compute(pred):
        p, y = pred.predictions, pred.label_ids
        m = np.isin(y, digit_ids)
        return {"accuracy": float((p[m] == y[m]).mean()) if m.any() else 0.0}

    return compute


def training_arguments(cfg: TrainConfig, out: Path, device: str, **override):
    """The Trainer's arguments for ``cfg`` (the run and scripts/gpu_check.py's steps use the same)."""
    from transformers import TrainingArguments

    kw = dict(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.per_device_batch,
        per_device_eval_batch_size=cfg.eval_batch,
        gradient_accumulation_steps=cfg.grad_accum(world_size()),
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        optim=cfg.optim,
        lr_scheduler_type="linear",
        eval_strategy=cfg.eval_strategy,
        save_strategy=cfg.eval_strategy,
        eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps,
        load_best_model_at_end=True,
        metric_for_best_model=f"eval_{cfg.best_metric}",
        greater_is_better=cfg.best_metric == "accuracy",
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        bf16=cfg.compute_dtype == "bfloat16",
        use_cpu=device == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
        label_names=["labels"],
        eval_on_start=True,
        disable_tqdm=False,
        ddp_find_unused_parameters=False,
    )
    kw.update(override)
    return TrainingArguments(**kw)


def train(cfg: TrainConfig) -> Path:
    """Fine-tune and write the run folder; returns it."""
    from transformers import AutoTokenizer, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    check_environment(cfg, needs_base=bool(cfg.base_model))
    started = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    dialogues = load(cfg.data)
    split = counselor_split(dialogues, cfg.subset) if cfg.task == "counselor" else scorer_split(dialogues, cfg.seed)
    base = resolve_base(cfg, dialogues, out)
    tok = AutoTokenizer.from_pretrained(base)
    import transformers

    model_type = transformers.AutoConfig.from_pretrained(base).model_type
    fmt = detect_format(tok, model_type, cfg.chat_format)
    eot_id = tok.convert_tokens_to_ids(fmt.eot_token)
    if eot_id is None or eot_id == tok.unk_token_id:
        raise ConfigError(f"the tokenizer has no single token for the end-of-turn {fmt.eot_token!r}")
    mk = dict(tok=tok, max_target_tokens=cfg.max_target_tokens, seed=cfg.seed)
    train_src = sources_for(cfg.task, dialogues, split.train, limit=cfg.max_train_examples, **mk)
    eval_src = sources_for(cfg.task, dialogues, split.validation, limit=cfg.max_eval_examples, **mk)
    ds_kw = dict(
        tok=tok,
        fmt=fmt,
        task=cfg.task,
        max_seq_len=cfg.max_seq_len,
        system=cfg.system_prompt,
        history_turns=cfg.history_turns,
    )
    train_ds, eval_ds = ExampleSet(train_src, **ds_kw), ExampleSet(eval_src, **ds_kw)
    checked = {"train": check_examples(train_ds, "training"), "validation": check_examples(eval_ds, "validation")}
    device = _device(cfg)
    model = load_model(cfg, base, device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    args = training_arguments(cfg, out, device)
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=lambda b: collate_left(b, pad),
        compute_metrics=digit_metrics(tok) if cfg.task == "scorer" else None,
    )
    resume = cfg.resume
    if resume == "latest":
        resume = get_last_checkpoint(str(out / "checkpoints"))
        if resume is None:
            raise ConfigError(f"resume=latest but {out / 'checkpoints'} holds no checkpoint")
    trainer.train(resume_from_checkpoint=resume)
    if not trainer.is_world_process_zero():
        return out
    adapter = out / "adapter"
    trainer.save_model(str(adapter))
    tok.save_pretrained(str(adapter))
    if (Path(base) / "tokenizer.model").is_file():  # transformers 5 does not write it
        shutil.copy(Path(base) / "tokenizer.model", adapter / "tokenizer.model")
    history = trainer.state.log_history
    plot_losses(history, out / "loss.png")
    write_json(
        out / "run.json",
        {
            "kind": "kokoro-lora-run",
            "task": cfg.task,
            "settings": cfg.as_dict(),
            "base_model": str(Path(base).resolve()),
            "chat_format": fmt.as_dict(),
            "eot_token_id": eot_id,
            "eos_token_id": tok.eos_token_id,
            "bos_token_id": tok.bos_token_id,
            "split": split.as_dict() | {"used_train": len(train_ds), "used_validation": len(eval_ds)},
            "examples_checked": checked,
            "validation": {
                "used": len(eval_ds),
                "max_eval_examples": cfg.max_eval_examples,
                "sample": "fixed, drawn with the seed" if cfg.max_eval_examples else "all",
                "eval_batch": cfg.eval_batch,
            },
            "world_size": world_size(),
            "global_batch": cfg.batch_size,
            "gradient_accumulation": cfg.grad_accum(world_size()),
            "device": device,
            "versions": library_versions(),
            "quantized_layers": count_4bit(model),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "best_metric": trainer.state.best_metric,
            "log_history": history,
            "seconds": round(time.time() - started, 1),
        },
    )
    return out
