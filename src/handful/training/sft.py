"""`handful train sft`: supervised fine-tuning on distilled traces, through TRL's SFTTrainer.

Records from `sft.jsonl` become prompt/completion pairs (every turn but the last, then the
assistant's), so the loss falls on the response only and the prompt is rendered by the
chat template with the generation prompt, exactly as `handful eval` renders it (a test
holds the two to the same tokens). Samples longer than `max_seq_len` are counted and
reported before training, since TRL cuts them silently and a cut response never learns to
stop.

A held-out split of the training data chooses the checkpoint (lowest validation loss);
the test benchmarks never do. Checkpoints are HF folders with safetensors, kept in
`OUT/checkpoints/`, and `--resume` continues from the last one. The model to evaluate is
`OUT/model` (merged weights) or `OUT/adapter` (a LoRA adapter), each with the prompt
settings `handful eval` needs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from pathlib import Path
from typing import NamedTuple

from handful.errors import ConfigError, RecordError
from handful.models import ResolvedModel, resolve
from handful.records import read_dicts
from handful.training.common import (
    freeze_below,
    last_checkpoint,
    lora_config,
    save_outputs,
    training_arguments,
    weights_dtype,
    write_manifest,
)
from handful.training.config import SFTConfig

log = logging.getLogger(__name__)


def load_pairs(path: str | Path) -> list[dict]:
    """prompt/completion records from chat records; errors name the file and line."""
    pairs = []
    for number, row in read_dicts(path):
        where = f"{path}:{number}"
        chat = row.get("messages")
        if not isinstance(chat, list) or not chat:
            raise RecordError(f"{where}: field 'messages' must be a non-empty list of chat turns")
        for i, turn in enumerate(chat):
            if (
                not isinstance(turn, dict)
                or not isinstance(turn.get("role"), str)
                or not isinstance(turn.get("content"), str)
            ):
                raise RecordError(f"{where}: messages[{i}] must have string 'role' and 'content'")
        if chat[-1]["role"] != "assistant" or len(chat) < 2:
            raise RecordError(f"{where}: the last turn must be the assistant's, after at least one other")
        pairs.append({"prompt": chat[:-1], "completion": [chat[-1]]})
    return pairs


def lengths(pairs: list[dict], tokenizer) -> list[tuple[int, int]]:
    """(prompt tokens, prompt + completion tokens) as the chat template renders them."""
    out = []
    for pair in pairs:
        prompt = tokenizer.apply_chat_template(
            pair["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        full = tokenizer.apply_chat_template(pair["prompt"] + pair["completion"], tokenize=True, return_dict=False)
        out.append((len(prompt), len(full)))
    return out


def truncation(sizes: list[tuple[int, int]], max_len: int) -> dict:
    cut = [full - max_len for _, full in sizes if full > max_len]
    no_response = sum(prompt >= max_len for prompt, _ in sizes)
    return {
        "samples": len(sizes),
        "truncated": len(cut),
        "tokens_cut_mean": round(sum(cut) / len(cut), 1) if cut else 0,
        "tokens_cut_max": max(cut, default=0),
        "prompt_fills_max_len": no_response,
        "longest": max((full for _, full in sizes), default=0),
    }


def split(pairs: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    if fraction <= 0 or len(pairs) < 2:
        return pairs, []
    held = max(1, round(len(pairs) * fraction))
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:held])
    return [p for i, p in enumerate(pairs) if i not in chosen], [p for i, p in enumerate(pairs) if i in chosen]


def _trainer_class(group_by_length: bool = False):
    """TRL's SFTTrainer, with the loss computed directly on a CPU, and batches of similar length
    when asked (`training/batches.py`).

    TRL computes the loss through a chunked LM head that never holds all the logits: on a GPU
    with long traces that saves memory, but its backward pass recomputes the logits tile by
    tile, which on a CPU made it half of a step (3.1 of 9.7 s for SmolLM2 at 4 x 256 tokens,
    see docs/PERFORMANCE.md). Its evaluation builds the logits of every position, prompt and
    padding included, and their entropy. Here the LM head runs once, on the positions that
    carry a label (the response), and cross-entropy is summed over them and divided as TRL
    divides; held-out batches go the same way, since only their loss is kept. Anything else
    (a GPU, several processes, a custom loss) goes through TRL's own path."""
    import torch
    from trl import SFTTrainer

    from handful.training.batches import SimilarLengths

    class Trainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Several processes wrap the model (DDP, FSDP), and only its own forward keeps them in step.
            trl = torch.cuda.is_available() or self.accelerator.num_processes > 1 or self.compute_loss_func is not None
            if trl or (return_outputs and not self.args.prediction_loss_only):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if model.training else "eval"
            causal = model.get_base_model() if hasattr(model, "get_base_model") else model  # a LoRA model
            given = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
            target = inputs["labels"][:, 1:]
            mask = target != -100
            # accelerate puts bf16 autocast around the model's forward, which this path does not call.
            with self.accelerator.autocast():
                hidden = causal.get_decoder()(**given, use_cache=False).last_hidden_state[:, :-1]
                logits = causal.get_output_embeddings()(hidden[mask]).float()
            answers = target[mask]
            total = torch.nn.functional.cross_entropy(logits, answers, reduction="sum")
            loss = total / (num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1))
            with torch.no_grad():
                right = self.accelerator.gather_for_metrics((logits.argmax(-1) == answers).sum()).sum()
                seen = self.accelerator.gather_for_metrics(mask.sum()).sum()
            self._metrics[mode]["mean_token_accuracy"].append((right / seen).item() if seen > 0 else 0.0)
            if mode == "train":
                tokens = (
                    inputs["attention_mask"].sum() if "attention_mask" in inputs else inputs["position_ids"].size(1)
                )
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(torch.as_tensor(tokens)).sum())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            # The evaluation loop reads logits from the outputs; with prediction_loss_only it drops them.
            return (loss, {}) if return_outputs else loss

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not group_by_length or dataset is None:
                return super()._get_train_sampler(train_dataset)
            lengths = [len(ids) for ids in dataset["input_ids"]]
            return SimilarLengths(lengths, self.args.per_device_train_batch_size, self.args.seed)

    return Trainer


class Prepared(NamedTuple):
    trainer: object
    tokenizer: object
    model_ref: ResolvedModel
    train: list[dict]
    val: list[dict]
    cut: dict


def prepare(cfg: SFTConfig, checkpoints: Path) -> Prepared:
    """The TRL trainer for a recipe, ready to train: data read, split and measured, model loaded.
    `benchmarks/bench_train.py` runs a bare loop over this trainer's own batches."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TRLConfig

    model_ref = resolve(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_ref.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pairs = load_pairs(cfg.data)
    cut = truncation(lengths(pairs, tokenizer), cfg.max_seq_len)
    if cut["truncated"]:
        log.warning(
            "%d of %d samples are longer than max_seq_len=%d and lose %s tokens on average (at most %d), "
            "their ends included",
            cut["truncated"],
            cut["samples"],
            cfg.max_seq_len,
            cut["tokens_cut_mean"],
            cut["tokens_cut_max"],
        )
    train, val = split(pairs, cfg.val_fraction, cfg.seed)
    args = training_arguments(
        TRLConfig,
        cfg,
        checkpoints,
        has_eval=bool(val),
        max_length=cfg.max_seq_len,
        packing=cfg.packing,
        completion_only_loss=True,
        dataset_text_field="text",
        prediction_loss_only=True,  # the held-out split chooses the checkpoint by its loss alone
    )
    model = AutoModelForCausalLM.from_pretrained(model_ref.path, dtype=weights_dtype(args), use_safetensors=True)
    freeze_below(model, cfg)
    trainer = _trainer_class(cfg.group_by_length)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(val) if val else None,
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora),
    )
    return Prepared(trainer, tokenizer, model_ref, train, val, cut)


def train_sft(cfg: SFTConfig, out: str | Path, *, resume: bool = False) -> dict:
    if not cfg.data:
        raise ConfigError("data: give the fine-tuning set (--data sft.jsonl)")
    out = Path(out)
    checkpoints = out / "checkpoints"
    if not resume and checkpoints.exists() and any(checkpoints.glob("checkpoint-*")):
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or use another --out")
    started = time.time()
    trainer, tokenizer, model_ref, train, val, cut = prepare(cfg, checkpoints)
    last = last_checkpoint(checkpoints) if resume else None
    result = trainer.train(resume_from_checkpoint=last)
    if not trainer.is_world_process_zero():  # one process writes; the others are done
        return {"outputs": {}, "rank": trainer.args.process_index}
    saved = save_outputs(trainer, tokenizer, model_ref, cfg.lora, out)
    data_hash = hashlib.sha256(Path(cfg.data).read_bytes()).hexdigest()
    summary = {
        "stage": "sft",
        "model": cfg.model,
        "base_path": model_ref.path,
        "data": str(cfg.data),
        "data_sha256": data_hash,
        "train_samples": len(train),
        "validation_samples": len(val),
        "truncation": cut,
        "processes": trainer.args.world_size,
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_validation_loss": trainer.state.best_metric,
        "log": trainer.state.log_history,
        "outputs": saved,
        "seconds": round(time.time() - started, 1),
        "resumed_from": last,
    }
    write_manifest(out, cfg, summary)
    if cfg.eval_benchmark:
        from handful.config import EvalConfig
        from handful.evaluation import evaluate

        cfg = EvalConfig(
            model=saved["eval_model"],
            benchmarks=cfg.eval_benchmark,
            limit=cfg.eval_limit,
            sampling={"max_tokens": cfg.eval_max_tokens},
        )
        summary["eval"] = evaluate(cfg, out / "eval").model_dump(mode="json")["benchmarks"]
        write_manifest(out, cfg, summary)
    return summary
