"""What the SFT and GRPO stages share: trainer arguments from a cfg, LoRA, saving the
model where `handful eval` can load it, and the run's manifest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from handful.errors import ConfigError
from handful.files import write_json, write_text
from handful.hardware import training_bf16
from handful.models import SPEC_FILE, ResolvedModel
from handful.training.config import LoraSettings, Schedule

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def trackers(wanted: list[str]) -> list[str]:
    """The requested trackers that are installed: a missing one is skipped, not fatal."""
    found = [name for name in wanted if name in TRACKERS and importlib.util.find_spec(TRACKERS[name]) is not None]
    return found or ["none"]


def training_arguments(config_class, cfg: Schedule, out: Path, *, has_eval: bool, **extra):
    import torch

    cuda = torch.cuda.is_available()
    bf16 = training_bf16(cfg.bf16)
    kwargs = dict(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_betas[0],
        adam_beta2=cfg.adam_betas[1],
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        bf16=bf16,
        use_cpu=not cuda,
        activation_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to=trackers(cfg.report_to),
    )
    if has_eval:
        # The checkpoint is chosen on held-out training data, never on a test benchmark.
        kwargs.update(
            eval_strategy="steps",
            eval_steps=cfg.save_steps,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    return config_class(**kwargs, **extra)


def weights_dtype(args):
    """float32 master weights on a CPU, where bf16 is autocast around them; a GPU run with
    bf16 keeps its weights in bf16, to fit larger models."""
    import torch

    return torch.bfloat16 if args.bf16 and torch.cuda.is_available() else torch.float32


def freeze_below(model, cfg: Schedule) -> None:
    """Leave all but the top `cfg.train_layers` decoder layers (and the final norm) as they are.
    Nothing below the lowest trained layer needs a gradient, so autograd stops there: on a CPU
    the backward pass and the optimizer step shrink with the share of layers frozen."""
    if cfg.train_layers is None:
        return
    decoder = model.get_decoder()
    layers = decoder.layers
    if cfg.train_layers > len(layers):
        raise ConfigError(f"train_layers: {cfg.train_layers} is more than the model's {len(layers)} decoder layers")
    model.requires_grad_(False)
    for layer in layers[len(layers) - cfg.train_layers :]:
        layer.requires_grad_(True)
    decoder.norm.requires_grad_(True)


def lora_config(lora: LoraSettings):
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def _finish(folder: Path, tokenizer, base: ResolvedModel) -> None:
    tokenizer.save_pretrained(folder)
    write_text(folder / SPEC_FILE, base.spec.model_dump_json(indent=2))  # the prompt format eval must use


def save_outputs(trainer, tokenizer, base: ResolvedModel, lora: LoraSettings, out: Path) -> dict:
    """OUT/model (full or merged weights) and, with LoRA, OUT/adapter; which one to evaluate."""
    saved = {}
    if lora.enabled:
        trainer.model.save_pretrained(out / "adapter", safe_serialization=True)
        _finish(out / "adapter", tokenizer, base)
        saved["adapter"] = str(out / "adapter")
        if lora.merge:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(out / "model", safe_serialization=True)
            _finish(out / "model", tokenizer, base)
            saved["model"] = str(out / "model")
    else:
        trainer.save_model(str(out / "model"))
        _finish(out / "model", tokenizer, base)
        saved["model"] = str(out / "model")
    saved["eval_model"] = saved.get("model", saved.get("adapter"))
    return saved


def write_manifest(out: Path, cfg, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    from handful.evaluation import versions

    record = {
        "recipe": cfg.model_dump(mode="json"),
        "versions": versions("trl", "peft", "accelerate", "datasets"),
        **summary,
    }
    write_json(out / "train.json", record)


def last_checkpoint(checkpoints: Path) -> str | None:
    """The newest whole checkpoint to resume from. The Trainer writes trainer_state.json last, so
    a checkpoint a kill cut short (weights written, state not) is passed over for the one before."""
    whole = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return str(max(whole, key=lambda p: int(p.name.split("-")[1]))) if whole else None
