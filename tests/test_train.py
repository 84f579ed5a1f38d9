import json
import logging
import math
import subprocess
import sys

import pytest
import torch
import yaml

from handful.config import EvalConfig, load_config
from handful.distill import DistillConfig, distill
from handful.errors import ConfigError, RecordError
from handful.evaluation import evaluate
from handful.models import resolve
from handful.prompts import render
from handful.records import Problem, read_jsonl
from handful.training.config import RECIPES, GRPOConfig, SFTConfig, preset_path
from handful.training.sft import load_pairs, train_sft

QUICK = {
    "batch_size": 4,
    "save_steps": 2,
    "logging_steps": 1,
    "report_to": ["none"],
    "lr": 1e-3,
    "warmup": 0,
    "bf16": False,
}


@pytest.fixture(scope="module")
def traces(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("distilled")
    distill(
        DistillConfig(
            problems="dyn:addition?digits=2&n=20&seed=4",
            teacher={"model": str(tiny_model), "engine": {"name": "program"}},
        ),
        out,
    )
    return out


def test_sft_makes_a_checkpoint_that_eval_loads(tiny_model, traces, tmp_path):
    recipe = SFTConfig(model=str(tiny_model), data=str(traces / "sft.jsonl"), max_steps=4, val_fraction=0.2, **QUICK)
    summary = train_sft(recipe, tmp_path)
    assert summary["steps"] == 4 and math.isfinite(summary["train_loss"])
    assert summary["validation_samples"] == 4 and summary["best_checkpoint"].startswith(str(tmp_path / "checkpoints"))
    model = tmp_path / "model"
    assert (model / "model.safetensors").exists() and (model / "handful.json").exists()
    manifest = json.loads((tmp_path / "train.json").read_text())
    assert manifest["versions"]["trl"] and manifest["data_sha256"] and manifest["recipe"]["lr"] == 1e-3
    scores = evaluate(
        EvalConfig(model=str(model), benchmarks=["dyn:addition?digits=2&n=3&seed=9"], sampling={"max_tokens": 8}),
        tmp_path / "eval",
    )
    assert scores.benchmarks["dyn:addition?digits=2"].n_samples == 3


def test_train_layers_trains_the_top_layers_and_leaves_the_rest_as_they_were(tiny_model, traces, tmp_path):
    from safetensors.torch import load_file

    recipe = SFTConfig(
        model=str(tiny_model), data=str(traces / "sft.jsonl"), max_steps=2, val_fraction=0, train_layers=1, **QUICK
    )
    train_sft(recipe, tmp_path)
    before, after = load_file(tiny_model / "model.safetensors"), load_file(tmp_path / "model" / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, "nothing was trained"
    assert all(name.startswith(("model.layers.1.", "model.norm.")) for name in changed), sorted(changed)
    assert any(name.startswith("model.layers.1.") for name in changed) and "model.norm.weight" in changed


def test_train_layers_that_cannot_apply_are_refused(tiny_model, traces, tmp_path):
    settings = {"model": str(tiny_model), "data": str(traces / "sft.jsonl"), "max_steps": 1, **QUICK}
    with pytest.raises(ConfigError, match="train_layers: .*LoRA"):
        load_config(SFTConfig, tmp_path / "sft.yaml", data={**settings, "train_layers": 1, "lora": {"enabled": True}})
    recipe = SFTConfig(**settings, train_layers=3)
    with pytest.raises(ConfigError, match="more than the model's 2 decoder layers"):
        train_sft(recipe, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("lora", [False, True])
def test_the_direct_cpu_loss_is_trls_loss_with_the_same_gradients(tiny_model, traces, tmp_path, lora):
    """handful computes the SFT loss on a CPU without TRL's chunked LM head (it is faster there);
    the loss and every gradient must be TRL's own, on the same batch, full fine-tuning or LoRA."""
    import torch
    from trl import SFTTrainer

    from handful.training.sft import prepare

    recipe = SFTConfig(
        model=str(tiny_model),
        data=str(traces / "sft.jsonl"),
        max_steps=1,
        val_fraction=0,
        lora={"enabled": lora},
        **QUICK,
    )
    trainer = prepare(recipe, tmp_path / "checkpoints").trainer
    model = trainer.model
    model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    items = int((batch["labels"] != -100).sum())

    def loss_and_grads(compute):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same LoRA dropout masks for both
        loss = compute(trainer, model, dict(batch), num_items_in_batch=torch.tensor(items))
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ours, our_grads = loss_and_grads(type(trainer).compute_loss)
    theirs, their_grads = loss_and_grads(SFTTrainer.compute_loss)
    assert type(trainer).compute_loss is not SFTTrainer.compute_loss
    assert ours == pytest.approx(theirs, rel=1e-5)
    worst = max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) for a, b in zip(our_grads, their_grads))
    assert worst < 1e-4, worst


def test_bf16_training_runs_the_direct_loss_in_bf16(tiny_model, traces, tmp_path):
    """Where bf16 is the default (a CPU with bf16 units), the direct CPU loss runs under autocast:
    accelerate puts it around the model's forward only, which that path does not call. Elsewhere
    the default is float32."""
    from handful.hardware import fast_on_cpu
    from handful.training.sft import prepare

    recipe = SFTConfig(
        model=str(tiny_model), data=str(traces / "sft.jsonl"), max_steps=1, val_fraction=0, **{**QUICK, "bf16": None}
    )
    trainer = prepare(recipe, tmp_path / "checkpoints").trainer
    model = trainer.model
    model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    seen = []
    hook = model.get_decoder().layers[0].mlp.down_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    loss = trainer.compute_loss(model, dict(batch))
    hook.remove()
    assert seen == [torch.bfloat16 if fast_on_cpu("bfloat16") else torch.float32]
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())


def test_held_out_batches_get_trls_loss_without_the_logits_of_every_position(tiny_model, traces, tmp_path):
    """The held-out loss that chooses the checkpoint goes through the direct CPU path too: the
    LM head sees the response positions only, and the loss is TRL's own on the same batch."""
    from trl import SFTTrainer

    from handful.training.sft import prepare

    recipe = SFTConfig(model=str(tiny_model), data=str(traces / "sft.jsonl"), max_steps=1, val_fraction=0.3, **QUICK)
    trainer = prepare(recipe, tmp_path / "checkpoints").trainer
    model = trainer.model
    model.eval()
    batch = next(iter(trainer.get_eval_dataloader()))
    shapes = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    ours, logits, _ = trainer.prediction_step(
        model, dict(batch), prediction_loss_only=trainer.args.prediction_loss_only
    )
    hook.remove()
    assert logits is None and len(shapes) == 1
    assert shapes[0] == (int((batch["labels"][:, 1:] != -100).sum()), model.config.hidden_size)
    with torch.no_grad():
        theirs = SFTTrainer.compute_loss(trainer, model, dict(batch))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_batches_of_similar_length_pad_less_and_cover_every_sample_once(tiny_model, tmp_path):
    from handful.training.sft import prepare

    out = tmp_path / "mixed"
    distill(
        DistillConfig(
            problems="dyn:subtraction?digits=3&n=24&seed=4",  # negative results have longer traces
            teacher={"model": str(tiny_model), "engine": {"name": "program"}},
        ),
        out,
    )

    def padded(group: bool) -> tuple[int, list[int]]:
        """Tokens run through the model in an epoch, and each sample's own length."""
        recipe = SFTConfig(
            model=str(tiny_model), data=str(out / "sft.jsonl"), val_fraction=0, group_by_length=group, **QUICK
        )
        loader = prepare(recipe, tmp_path / f"checkpoints-{group}").trainer.get_train_dataloader()
        batches = list(loader)
        own = sorted(n for b in batches for n in b["attention_mask"].sum(dim=1).tolist())
        return sum(b["input_ids"].numel() for b in batches), own

    (grouped, grouped_tokens), (mixed, mixed_tokens) = padded(True), padded(False)
    assert grouped_tokens == mixed_tokens  # the same samples, each once
    assert grouped < 0.9 * mixed, (grouped, mixed)


def test_similar_length_order_comes_from_the_epoch_alone():
    from handful.training.batches import SimilarLengths

    lengths = [10, 50, 12, 48, 11, 49, 30, 31, 29, 90, 91]
    sampler = SimilarLengths(lengths, batch_size=3, seed=0)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] == orders[2] and orders[0] != orders[1]  # a resumed epoch skips the same batches
    for order in orders:
        assert sorted(order) == list(range(len(lengths)))
        batches = [order[i : i + 3] for i in range(0, len(order), 3)]
        assert len(batches[-1]) == 2  # the short batch last, so the loader's cuts stay aligned
        assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 3 for b in batches[:-1])


def test_the_lowest_validation_loss_chooses_the_checkpoint(tiny_model, traces, tmp_path):
    from safetensors.torch import load_file

    # A constant rate this high overshoots after two steps, so the best checkpoint is not the
    # last one, and taking the last one by mistake shows.
    quick = {**QUICK, "lr": 0.5, "scheduler": "constant"}
    recipe = SFTConfig(model=str(tiny_model), data=str(traces / "sft.jsonl"), max_steps=4, val_fraction=0.2, **quick)
    summary = train_sft(recipe, tmp_path)
    manifest = json.loads((tmp_path / "train.json").read_text())
    losses = {e["step"]: e["eval_loss"] for e in manifest["log"] if "eval_loss" in e}
    assert sorted(losses) == [2, 4]
    best = min(losses, key=losses.get)
    assert best != 4, losses  # the premise of this test
    checkpoints = tmp_path / "checkpoints"
    assert manifest["best_checkpoint"] == summary["best_checkpoint"] == str(checkpoints / f"checkpoint-{best}")
    assert manifest["best_validation_loss"] == pytest.approx(losses[best])
    # The model handed to eval is that checkpoint, weight for weight, not the last one.
    model = load_file(tmp_path / "model" / "model.safetensors")
    chosen = load_file(checkpoints / f"checkpoint-{best}" / "model.safetensors")
    last = load_file(checkpoints / "checkpoint-4" / "model.safetensors")
    assert model.keys() == chosen.keys() and all(torch.equal(model[k], chosen[k]) for k in model)
    assert not all(torch.equal(model[k], last[k]) for k in model)


def test_the_training_prompt_is_the_eval_prompt_token_for_token(tiny_model, traces):
    # What TRL trains on, up to the response, against what `handful eval` sends the model.
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pairs = load_pairs(traces / "sft.jsonl")[:5]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(pairs),
        args=SFTConfig(
            output_dir="/tmp/unused",
            use_cpu=True,
            bf16=False,
            completion_only_loss=True,
            report_to="none",
            max_length=2048,
            activation_checkpointing=False,
        ),
    )
    problems = {p.id: p for p in read_jsonl(traces / "problems.jsonl", Problem)}
    rows = [json.loads(line) for line in (traces / "sft.jsonl").read_text().splitlines()][:5]
    spec = resolve(str(tiny_model)).spec
    for row, example in zip(rows, trainer.train_dataset):
        prompt_ids = [t for t, label in zip(example["input_ids"], example["labels"]) if label == -100]
        assert (
            prompt_ids
            == tokenizer(render(problems[row["problem_id"]], spec, tokenizer), add_special_tokens=False)["input_ids"]
        )
        response = tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != -100])
        assert response.startswith(spec.think_open) and "\\boxed{" in response


def test_truncation_is_counted_and_resume_continues(tiny_model, traces, tmp_path, caplog):
    recipe = SFTConfig(
        model=str(tiny_model), data=str(traces / "sft.jsonl"), max_steps=2, max_seq_len=64, val_fraction=0, **QUICK
    )
    with caplog.at_level(logging.WARNING, logger="handful.training.sft"):
        first = train_sft(recipe, tmp_path)
    assert (
        first["truncation"]["truncated"] == first["truncation"]["samples"] == 20
        and first["truncation"]["tokens_cut_mean"] > 0
    )
    assert "20 of 20 samples are longer than max_seq_len=64" in caplog.text
    with pytest.raises(ConfigError, match="--resume"):
        train_sft(recipe, tmp_path)
    second = train_sft(recipe.model_copy(update={"max_steps": 4}), tmp_path, resume=True)
    assert second["resumed_from"].endswith("checkpoint-2") and second["steps"] == 4


def test_lora_saves_an_adapter_and_merged_weights_both_loadable(tiny_model, traces, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = SFTConfig(
        model=str(tiny_model),
        data=str(traces / "sft.jsonl"),
        max_steps=2,
        val_fraction=0,
        lora={"enabled": True, "r": 4, "alpha": 8},
        **QUICK,
    )
    summary = train_sft(recipe, tmp_path)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists() and (
        tmp_path / "model" / "model.safetensors"
    ).exists()
    for folder in ("adapter", "model"):
        scores = evaluate(
            EvalConfig(
                model=str(tmp_path / folder),
                benchmarks=["dyn:addition?digits=2&n=2&seed=9"],
                sampling={"max_tokens": 4},
            ),
            tmp_path / f"eval-{folder}",
        )
        assert scores.benchmarks["dyn:addition?digits=2"].n_samples == 2
    assert summary["outputs"]["eval_model"] == str(tmp_path / "model")
    # The adapter on its base and the merged weights are one model: the same logits, loaded the
    # way eval loads them. Merging rounds (~1e-4 here); the adapter moved them ~0.4 from the base.
    ids = AutoTokenizer.from_pretrained(tmp_path / "model")("What is 12 + 34?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        adapter, merged, base = (
            AutoModelForCausalLM.from_pretrained(f).eval()(ids).logits
            for f in (tmp_path / "adapter", tmp_path / "model", tiny_model)
        )
    assert torch.allclose(adapter, merged, atol=1e-3, rtol=0), (adapter - merged).abs().max()
    assert (adapter - base).abs().max() > 0.05  # else the comparison above proves nothing


def test_bad_training_data_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [{"role": "user", "content": "q"}]}\n'
    )
    with pytest.raises(RecordError, match=r"bad.jsonl:2: the last turn must be the assistant's"):
        load_pairs(path)


def test_grpo_runs_a_few_steps_with_grader_rewards_and_monitors(tiny_model, tmp_path):
    from handful.training.grpo import train_grpo

    recipe = GRPOConfig(
        model=str(tiny_model),
        problems="dyn:addition?digits=1&n=8&seed=1",
        max_steps=2,
        num_generations=4,
        max_completion_length=12,
        rewards={"accuracy": 1.0, "overlong": 0.5},
        overlong_buffer=4,
        **QUICK,
    )
    summary = train_grpo(recipe, tmp_path)
    [stage] = summary["stages"]
    assert stage["steps"] == 2 and len(stage["reward_by_step"]) == 2
    logged = {k for entry in stage["log"] for k in entry}
    assert {
        "rewards_parts/accuracy",
        "monitor/format_without_accuracy",
        "monitor/repetition",
        "frac_reward_zero_std",
        "completions/mean_length",
    } <= logged
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_rewards_use_the_grader_and_punish_overlong():
    from handful.models import ModelSpec
    from handful.training.rewards import Rewards

    spec = ModelSpec()
    r = Rewards(
        spec, {"accuracy": 1.0, "format": 0.5, "overlong": 1.0}, limit=100, buffer=20, require_closed_thinking=True
    )
    assert r.parts("<think>4+4</think>\n\nThe answer is $\\boxed{8}$.", 50, "8", "integer", None) == {
        "accuracy": 1.0,
        "format": 1.0,
        "overlong": 0.0,
    }
    # An answer only inside unfinished thinking earns nothing.
    assert r.parts("<think>so \\boxed{8} probably", 50, "8", "integer", None)["accuracy"] == 0.0
    assert r.parts("<think>x</think> \\boxed{9}", 90, "8", "integer", None) == {
        "accuracy": 0.0,
        "format": 1.0,
        "overlong": -0.5,
    }
    assert r.parts("<think>x</think> \\boxed{8}", 100, "8", "integer", None)["overlong"] == -1.0
    with pytest.raises(ConfigError, match="unknown reward"):
        Rewards(spec, {"accurcy": 1.0}, 10, 2)


def test_shipped_recipes_parse_with_their_published_settings():
    s1 = load_config(SFTConfig, preset_path("sft-s1"))
    assert (s1.lr, s1.epochs, s1.weight_decay, s1.adam_betas, s1.warmup) == (1e-5, 5, 1e-4, (0.9, 0.95), 0.05)
    limo = load_config(SFTConfig, preset_path("sft-limo"))
    assert (limo.lr, limo.epochs) == (5e-6, 15)
    deepscaler = load_config(GRPOConfig, preset_path("grpo-deepscaler"))
    assert [s.max_completion_length for s in deepscaler.context_schedule] == [
        8192,
        16384,
        24576,
    ] and deepscaler.lr == 1e-6
    load_config(SFTConfig, preset_path("sft-cpu-small"))
    load_config(GRPOConfig, preset_path("grpo-cpu-small"))
    for path in (RECIPES / "accelerate").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["distributed_type"]
    with pytest.raises(ConfigError, match="shipped: .*sft-s1"):
        preset_path("sft-s2")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_follows_the_single_process_loss_curve(tiny_model, traces, tmp_path):
    args = [
        "train",
        "sft",
        "--data",
        str(traces / "sft.jsonl"),
        "--model",
        str(tiny_model),
        "--max-steps",
        "4",
        "--set",
        "val_fraction=0",
        "--set",
        "save_steps=100",
        "--set",
        "logging_steps=1",
        "--set",
        "report_to=[none]",
        "--set",
        "lr=0.001",
        "--set",
        "warmup=0",
        "--set",
        "bf16=false",
        "--set",
        "scheduler=constant",
    ]
    one = subprocess.run(
        [sys.executable, "-m", "handful", *args, "--set", "batch_size=4", "--out", str(tmp_path / "one")],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "handful",
            *args,
            "--set",
            "batch_size=2",
            "--accelerate-config",
            "ddp-cpu",
            "--out",
            str(tmp_path / "two"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert two.returncode == 0, two.stderr[-3000:]

    def losses(folder):
        return [e["loss"] for e in json.loads((folder / "train.json").read_text())["log"] if "loss" in e]

    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "train.json").read_text())["processes"] == 2
    assert len(a) == len(b) == 4
    assert all(abs(x - y) <= 1e-3 * abs(x) + 1e-4 for x, y in zip(a, b)), (a, b)
    assert a[0] != a[-1]  # the curve moves: equal curves are not two flat lines


def test_a_checkpoint_cut_short_is_passed_over(tmp_path):
    from handful.training.common import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step, whole in ((5, True), (10, True), (15, False)):  # a kill while checkpoint-15 was written
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        if whole:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
