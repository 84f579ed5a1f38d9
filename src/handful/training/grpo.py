"""`handful train grpo`: RL with verifiable rewards through TRL's GRPOTrainer.

Prompts are the student's chat turns for each problem, as `handful eval` renders them; the
reference answer, its format and options ride along as columns for the reward. Every
algorithm knob comes from the recipe. A context schedule (DeepScaleR's 8K -> 16K -> 24K)
runs as stages in `OUT/stage-N/`, each starting from the model the last one saved.
"""

from __future__ import annotations

import time
from pathlib import Path

from handful.benchmarks import subset
from handful.errors import ConfigError
from handful.models import resolve
from handful.prompts import messages
from handful.training.common import lora_config, save_outputs, training_arguments, write_manifest
from handful.training.config import ContextStage, GRPORecipe
from handful.training.rewards import Rewards


def dataset_rows(recipe: GRPORecipe, spec) -> list[dict]:
    from handful.curation.pools import load_pool

    if not recipe.problems:
        raise ConfigError("problems: give the problems to train on (--problems FILE, a pool or a dyn: spec)")
    problems = subset(load_pool(recipe.problems), recipe.limit, recipe.seed)
    return [
        {"prompt": messages(p, spec), "answer": p.answer, "answer_format": p.answer_format, "choices": p.choices or []}
        for p in problems
    ]


def train_grpo(recipe: GRPORecipe, out: str | Path, *, resume: bool = False) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    out = Path(out)
    started = time.time()
    base = resolve(recipe.model)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = dataset_rows(recipe, base.spec)
    # Without a schedule there is one stage, run for the recipe's own max_steps (-1: by epochs).
    stages = recipe.context_schedule or [
        ContextStage(max_steps=max(recipe.max_steps, 1), max_completion_length=recipe.max_completion_length)
    ]
    source, log, stage_summaries = base.path, [], []
    for number, stage in enumerate(stages):
        folder = out if len(stages) == 1 else out / f"stage-{number}"
        if (folder / "train.json").exists() and (folder / "model").exists():
            source = str(folder / "model")  # a finished stage, from an earlier run
            continue
        checkpoints = folder / "checkpoints"
        generations = stage.num_generations or recipe.num_generations
        steps = stage.max_steps if recipe.context_schedule else recipe.max_steps
        args = training_arguments(
            GRPOConfig,
            recipe.model_copy(update={"max_steps": steps}),
            checkpoints,
            has_eval=False,
            num_generations=generations,
            max_completion_length=stage.max_completion_length,
            temperature=recipe.temperature,
            top_p=recipe.top_p,
            beta=recipe.beta,
            loss_type=recipe.loss_type,
            epsilon=recipe.epsilon,
            epsilon_high=recipe.epsilon_high,
            scale_rewards=recipe.scale_rewards,
            mask_truncated_completions=recipe.mask_truncated_completions,
            use_vllm=recipe.use_vllm,
            shuffle_dataset=True,
        )
        reward = Rewards(
            base.spec,
            recipe.rewards,
            stage.max_completion_length,
            recipe.overlong_buffer,
            require_closed_thinking=recipe.rewards.get("format", 0) > 0 or bool(recipe.context_schedule),
        )
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.bfloat16 if args.bf16 else torch.float32, use_safetensors=True
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward],
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(recipe.lora),
        )
        last = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if resume else []
        trainer.train(resume_from_checkpoint=str(last[-1]) if last else None)
        saved = save_outputs(trainer, tokenizer, base, recipe.lora, folder) if trainer.is_world_process_zero() else {}
        rewards = [(entry["step"], entry["reward"]) for entry in trainer.state.log_history if "reward" in entry]
        summary = {
            "stage": "grpo",
            "context_stage": number,
            "max_completion_length": stage.max_completion_length,
            "steps": trainer.state.global_step,
            "reward_by_step": rewards,
            "log": trainer.state.log_history,
            "outputs": saved,
            "resumed_from": str(last[-1]) if last else None,
        }
        if trainer.is_world_process_zero():
            write_manifest(folder, recipe, summary)
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
        write_manifest(out, recipe, result)
    return result
