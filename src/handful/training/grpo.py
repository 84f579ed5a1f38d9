"""`handful train grpo`: RL with verifiable rewards through TRL's GRPOTrainer.

Prompts are the student's chat turns for each problem, as `handful eval` renders them; the
reference answer, its format and options ride along as columns for the reward. Every
algorithm knob comes from the cfg. A context schedule (DeepScaleR's 8K -> 16K -> 24K)
runs as stages in `OUT/stage-N/`, each starting from the model the last one saved.
"""

from __future__ import annotations

import time
from pathlib import Path

from handful.benchmarks import subset
from handful.errors import ConfigError
from handful.models import resolve
from handful.prompts import messages
from handful.tasks import gym
from handful.training.common import (
    freeze_below,
    last_checkpoint,
    lora_config,
    save_outputs,
    training_arguments,
    weights_dtype,
    write_manifest,
)
from handful.training.config import ContextStage, GRPOConfig
from handful.training.rewards import Rewards


def dataset_rows(cfg: GRPOConfig, spec) -> list[dict]:
    from handful.curation.pools import load_pool

    if not cfg.problems:
        raise ConfigError("problems: give the problems to train on (--problems FILE, a pool or a dyn: spec)")
    problems = subset(load_pool(cfg.problems), cfg.limit, cfg.seed)
    return [
        {
            "prompt": messages(p, spec),
            "answer": p.answer,
            "answer_format": p.answer_format,
            "choices": p.choices or [],
            "verifier": gym.handle(p) or "",  # a reasoning-gym problem's own verifier is its accuracy reward
        }
        for p in problems
    ]


def train_grpo(cfg: GRPOConfig, out: str | Path, *, resume: bool = False) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    out = Path(out)
    started = time.time()
    base = resolve(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = dataset_rows(cfg, base.spec)
    # Without a schedule there is one stage, run for the recipe's own max_steps (-1: by epochs).
    stages = cfg.context_schedule or [
        ContextStage(max_steps=max(cfg.max_steps, 1), max_completion_length=cfg.max_completion_length)
    ]
    source, log, stage_summaries = base.path, [], []
    for number, stage in enumerate(stages):
        folder = out if len(stages) == 1 else out / f"stage-{number}"
        if (folder / "train.json").exists() and (folder / "model").exists():
            source = str(folder / "model")  # a finished stage, from an earlier run
            continue
        checkpoints = folder / "checkpoints"
        generations = stage.num_generations or cfg.num_generations
        steps = stage.max_steps if cfg.context_schedule else cfg.max_steps
        args = training_arguments(
            GRPOConfig,
            cfg.model_copy(update={"max_steps": steps}),
            checkpoints,
            has_eval=False,
            num_generations=generations,
            max_completion_length=stage.max_completion_length,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            beta=cfg.beta,
            loss_type=cfg.loss_type,
            epsilon=cfg.epsilon,
            epsilon_high=cfg.epsilon_high,
            scale_rewards=cfg.scale_rewards,
            mask_truncated_completions=cfg.mask_truncated_completions,
            use_vllm=cfg.use_vllm,
            shuffle_dataset=True,
        )
        reward = Rewards(
            base.spec,
            cfg.rewards,
            stage.max_completion_length,
            cfg.overlong_buffer,
            require_closed_thinking=cfg.rewards.get("format", 0) > 0 or bool(cfg.context_schedule),
        )
        model = AutoModelForCausalLM.from_pretrained(source, dtype=weights_dtype(args), use_safetensors=True)
        freeze_below(model, cfg)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward],
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(cfg.lora),
        )
        last = last_checkpoint(checkpoints) if resume else None
        trainer.train(resume_from_checkpoint=last)
        saved = save_outputs(trainer, tokenizer, base, cfg.lora, folder) if trainer.is_world_process_zero() else {}
        rewards = [(entry["step"], entry["reward"]) for entry in trainer.state.log_history if "reward" in entry]
        summary = {
            "stage": "grpo",
            "context_stage": number,
            "max_completion_length": stage.max_completion_length,
            "steps": trainer.state.global_step,
            "reward_by_step": rewards,
            "log": trainer.state.log_history,
            "outputs": saved,
            "resumed_from": last,
        }
        if trainer.is_world_process_zero():
            write_manifest(folder, cfg, summary)
        stage_summaries.append(summary)
        log += trainer.state.log_history
        source = saved.get("eval_model", source)
    result = {
        "stages": stage_summaries,
        "seconds": round(time.time() - started, 1),
        "eval_model": source,
        "problems": len(rows),
    }
    if len(stages) > 1:
        write_manifest(out, cfg, result)
    return result
