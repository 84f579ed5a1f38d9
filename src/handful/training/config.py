"""Training settings (`SFTConfig`, `GRPOConfig`): every knob explicit, since the libraries' defaults change between
versions (TRL 1.x turned bf16 and gradient checkpointing on, GRPO's beta to 0 and its loss to
DAPO's). Shipped presets (YAML files of these settings) live in `handful/recipes/` (`sft-s1`, `sft-limo`, `sft-cpu-small`,
`grpo-deepscaler`, `grpo-cpu-small`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from handful.config import Config
from handful.errors import ConfigError

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


class LoraSettings(Config):
    enabled: bool = False
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    merge: bool = Field(default=True, description="also save the adapter merged into the base weights (out/model)")


class Schedule(Config):
    """What every trainer shares."""

    model: str = "smollm2-135m"
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = Field(default=-1, description="stop after this many optimizer steps; -1: epochs decide")
    lr: float = Field(default=1e-5, gt=0)
    scheduler: str = "cosine"
    warmup: float = Field(default=0.05, ge=0, description="< 1: share of the steps; >= 1: steps")
    weight_decay: float = Field(default=1e-4, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    batch_size: int = Field(default=4, ge=1, description="per device")
    grad_accum: int = Field(default=1, ge=1)
    bf16: bool | None = Field(
        default=None, description="None: where it is fast (a GPU that supports it, a CPU with AMX or AVX512-BF16)"
    )
    gradient_checkpointing: bool = False
    train_layers: int | None = Field(
        default=None,
        ge=1,
        description="train only the top N decoder layers and the final norm; the embeddings and the layers below "
        "stay as they are, so the backward pass stops at the lowest trained layer (None: the whole model)",
    )
    seed: int = 0
    save_steps: int = Field(default=50, ge=1)
    save_total_limit: int | None = 3
    logging_steps: int = Field(default=5, ge=1)
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"], description="tensorboard, wandb, mlflow (when installed), or none"
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)

    @model_validator(mode="after")
    def _one_way_to_choose_what_learns(self):
        # Refused with the recipe, before any stage runs or any model loads.
        if self.train_layers is not None and self.lora.enabled:
            raise ValueError("train_layers: LoRA already chooses what is trained; set one or the other")
        return self


class SFTConfig(Schedule):
    data: str | None = Field(default=None, description="sft.jsonl from `handful distill`")
    max_seq_len: int = Field(default=1024, ge=16)
    packing: bool = False
    group_by_length: bool = Field(
        default=False,
        description="batches of samples of similar length, in random order, so that little of a step is padding; "
        "where length tells kinds of sample apart, each batch holds one kind, and the demo learnt less that way",
    )
    val_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="held out to choose the checkpoint; never the test benchmarks"
    )
    eval_benchmark: list[str] = Field(default_factory=list, description="evaluated on the chosen checkpoint at the end")
    eval_limit: int | None = None
    eval_max_tokens: int = 512


class ContextStage(Config):
    """One stage of a growing-context schedule (DeepScaleR: 8K -> 16K -> 24K)."""

    max_steps: int = Field(ge=1)
    max_completion_length: int = Field(ge=1)
    num_generations: int | None = None


class GRPOConfig(Schedule):
    problems: str | None = Field(default=None, description="Problems (JSONL, pool, dyn: spec) with reference answers")
    limit: int | None = None
    num_generations: int = Field(default=8, ge=2, description="samples per prompt (the group)")
    max_completion_length: int = Field(default=256, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = 1.0
    beta: float = Field(default=0.0, ge=0, description="KL weight; 0 needs no reference model")
    loss_type: str = "dapo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    scale_rewards: str = "group"
    mask_truncated_completions: bool = False
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 1.0, "format": 0.0, "overlong": 0.0},
        description="reward name: weight (accuracy, format, overlong)",
    )
    overlong_buffer: int = Field(
        default=64, ge=0, description="tokens before the limit where the overlong penalty ramps up"
    )
    context_schedule: list[ContextStage] = Field(
        default_factory=list, description="stages run one after another, each resuming the last"
    )
    use_vllm: bool = False


def shipped_file(kind: str, folder: Path, name_or_path: str | Path) -> Path:
    """A YAML file by path, or one shipped in `folder` by its name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = folder / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(
        f"{kind} {str(name_or_path)!r}: no such file, and none shipped by that name; shipped: {', '.join(known)}"
    )


def preset_path(name_or_path: str | Path) -> Path:
    return shipped_file("training preset", RECIPES, name_or_path)


def trained_folder(cfg: SFTConfig | GRPOConfig, folder: Path) -> Path:
    """Where a training run in `folder` leaves the model to evaluate (known before it runs): the
    merged model, or the adapter when it is kept apart; a GRPO context schedule's last stage."""
    if isinstance(cfg, GRPOConfig) and len(cfg.context_schedule) > 1:
        folder = folder / f"stage-{len(cfg.context_schedule) - 1}"
    return folder / ("adapter" if cfg.lora.enabled and not cfg.lora.merge else "model")
