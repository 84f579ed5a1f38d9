"""SFT throughput and peak memory of SmolLM2-135M on this CPU: `handful train sft` at sequence
lengths 256 and 512, full fine-tuning against LoRA, padding against packing and against batches
of similar length (`group_by_length`), next to a plain
TRL `SFTTrainer` with its default settings on the same data — in one run.

    python benchmarks/bench_train.py              # every configuration, 6 steps each
    python benchmarks/bench_train.py --steps 10 --only lora
    python benchmarks/bench_train.py --padding runs/demo/distill/sft.jsonl --batch 8 --epochs 3

A bare PyTorch loop over the same trainer's batches is the reference for what the trainer
costs; it runs again under `torch.compile` (dynamic shapes), with its first step, which pays
for compiling, apart from the median of the others, and the number of steps after which
compiling has paid for itself. Where the CPU has bf16 units (AMX, AVX512-BF16), the seq-256
rows and the bare loops run again with bf16 autocast around fp32 weights, and `--curves` trains
fp32 and bf16 side by side for longer, with a validation split, and prints both loss curves and
how far apart they end.

Each configuration trains in a fresh process (so its peak RSS is its own) on the same
fine-tuning set: program-teacher traces for 3-digit additions (short) and 6-digit
subtractions (long), so lengths vary as in real trace sets and padding has a cost.

Reported: training tokens per second (the tokens TRL counts as seen, `num_tokens`, over the
train runtime; padding excluded), seconds per optimizer step, and peak RSS. The first step is
included: a user's run pays for it too.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handful.hardware import cpu_description, fast_on_cpu

BATCH = 4


def make_data(folder: Path) -> Path:
    from handful.distill import DistillConfig, distill

    rows = []
    for spec in ("dyn:addition?digits=3&n=48&seed=1", "dyn:subtraction?digits=6&n=48&seed=2"):
        out = folder / spec.split(":")[1].split("?")[0]
        distill(DistillConfig(problems=spec, teacher={"model": "smollm2-135m", "engine": {"name": "program"}}), out)
        rows += [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    rows = [
        rows[i // 2] if i % 2 == 0 else rows[48 + i // 2] for i in range(96)
    ]  # interleaved: every batch mixes lengths
    path = folder / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one(config: dict) -> dict:
    """Runs in its own process."""
    data, out, steps = config["data"], Path(config["out"]), config["steps"]
    started = time.perf_counter()
    if config["name"] == "trl-default":
        from datasets import load_dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        from handful.models import resolve

        path = resolve("smollm2-135m").path
        # TRL's defaults, but for the step count, no trackers, and the CPU (its default bf16
        # needs a GPU) -- the way a first-time user would write it.
        args = SFTConfig(
            output_dir=str(out),
            max_steps=steps,
            report_to="none",
            use_cpu=True,
            bf16=False,
            logging_steps=1,
            save_strategy="no",
        )
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(path),
            args=args,
            train_dataset=load_dataset("json", data_files=data, split="train").remove_columns(["problem_id"]),
            processing_class=AutoTokenizer.from_pretrained(path),
        )
        result = trainer.train()
        log, batch, runtime = (
            trainer.state.log_history,
            args.per_device_train_batch_size,
            result.metrics["train_runtime"],
        )
        settings = {
            "batch_size": batch,
            "max_length": args.max_length,
            "packing": args.packing,
            "loss": "every token (messages)",
        }
    else:
        from handful.training.config import SFTConfig
        from handful.training.sft import prepare, train_sft

        recipe = SFTConfig(
            model="smollm2-135m",
            data=data,
            max_steps=steps,
            batch_size=BATCH,
            lr=2e-4,
            warmup=0,
            max_seq_len=config["seq"],
            packing=config["packing"],
            group_by_length=config.get("group", False),
            lora={"enabled": config["lora"], "merge": False},
            report_to=["none"],
            # A curve run evaluates (and so saves) every few steps; a speed run never does.
            val_fraction=config.get("val", 0),
            save_steps=config.get("every", 10_000),
            save_total_limit=1,
            logging_steps=1,
            bf16=config.get("bf16", False),
        )
        if config.get("bare"):
            prepared = prepare(recipe, out / "checkpoints")
            log, runtime = bare_loop(prepared.trainer, steps, recipe.bf16, config.get("compile", False))
            truncated = prepared.cut["truncated"]
        else:
            summary = train_sft(recipe, out)
            log, truncated = summary["log"], summary["truncation"]["truncated"]
            runtime = next(e["train_runtime"] for e in log if "train_runtime" in e)
        batch = BATCH
        settings = {
            "batch_size": batch,
            "max_length": config["seq"],
            "packing": config["packing"],
            "loss": "response only",
            "truncated": truncated,
        }
    tokens = max(e.get("num_tokens", 0) for e in log)
    return {
        "name": config["name"],
        "tokens": tokens,
        "runtime_s": round(runtime, 1),
        "tokens_per_s": round(tokens / runtime, 1),
        "s_per_step": round(runtime / steps, 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **settings,
        "train_loss": [(e["step"], e["loss"]) for e in log if "loss" in e],
        "eval_loss": [(e["step"], e["eval_loss"]) for e in log if "eval_loss" in e],
        "step_s": next((e["step_s"] for e in log if "step_s" in e), []),
    }


def bare_loop(trainer, steps: int, bf16: bool, compiled: bool = False) -> tuple[list[dict], float]:
    """The reference: forward, backward and an AdamW step over the trainer's own batches (the
    same tokens, padding and loss mask), with nothing else -- no trainer, no logging, no saves."""
    import contextlib

    import torch

    model = trainer.model
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=trainer.args.learning_rate, betas=(0.9, 0.95)
    )
    # Batches differ in length: static shapes would compile again for nearly every batch.
    forward = torch.compile(model, dynamic=True) if compiled else model
    batches = iter(trainer.get_train_dataloader())
    tokens, times = 0, []
    for _ in range(steps):
        batch = next(batches)
        start = time.perf_counter()
        tokens += int(batch["attention_mask"].sum())
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = forward(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return [{"num_tokens": tokens, "step_s": times}], sum(times)


def configurations(data: str, folder: Path, steps: int) -> list[dict]:
    found = []
    for seq in (256, 512):
        for lora in (False, True):
            for packing in (False, True):
                name = f"handful seq{seq} {'lora' if lora else 'full'} {'packing' if packing else 'padding'}"
                found.append({"name": name, "seq": seq, "lora": lora, "packing": packing})
        # Batches of similar length (group_by_length): the padding the rows above pay for, left out another way.
        found.append(
            {"name": f"handful seq{seq} full grouped", "seq": seq, "lora": False, "packing": False, "group": True}
        )
    found.append({"name": "trl-default"})
    # The reference loop, eager and compiled, and all of these again in bf16 where this CPU has the units for it.
    bare = {"seq": 256, "lora": False, "packing": False, "bare": True}
    found.append({**bare, "name": "bare loop seq256 full padding"})
    found.append({**bare, "name": "bare loop seq256 full padding compiled", "compile": True})
    if fast_on_cpu("bfloat16"):
        for c in [c for c in found if c["name"].startswith(("handful seq256", "bare"))]:
            found.append({**c, "name": c["name"] + " bf16", "bf16": True})
    for i, c in enumerate(found):
        c.update(data=data, out=str(folder / f"run-{i}"), steps=steps)
    return found


# Two runs on the same batches in the same order differ only by their arithmetic; bf16 rounds
# each product to 8 bits of mantissa, so the curves drift apart a little at every step. This is
# the gap held acceptable at the end, relative to the fp32 loss.
CURVE_TOLERANCE = 0.03


def curves(data: str, folder: Path, steps: int) -> list[dict]:
    """fp32 and bf16 on the same data, seed and batches, with a validation split every few steps."""
    every = max(1, steps // 4)
    base = {"seq": 256, "lora": False, "packing": False, "val": 0.2, "every": every, "data": data, "steps": steps}
    return [
        {**base, "name": f"curve {name}", "bf16": bf16, "out": str(folder / f"curve-{name}")}
        for name, bf16 in (("fp32", False), ("bf16", True))
    ]


def padding(data: str, batch_size: int, epochs: int) -> None:
    """How many tokens `epochs` epochs of the whole of `data` run through the model, drawn at random
    and in batches of similar length, with the same collator (no training: the counts are exact)."""
    from handful.training.config import SFTConfig
    from handful.training.sft import prepare

    folder = Path(tempfile.mkdtemp(prefix="bench-padding-"))
    for group in (False, True):
        recipe = SFTConfig(
            data=data, batch_size=batch_size, val_fraction=0, group_by_length=group, report_to=["none"], bf16=False
        )
        loader = prepare(recipe, folder / str(group)).trainer.get_train_dataloader()
        run, real = 0, 0
        for epoch in range(epochs):
            loader.set_epoch(epoch)
            for batch in loader:
                run += batch["input_ids"].numel()
                real += int(batch["attention_mask"].sum())
        print(
            f"{'similar lengths' if group else 'random batches':16s} batch {batch_size}, {epochs} epoch(s): "
            f"{run} tokens run, {real} of them the samples' own ({100 * (run - real) / run:.1f} % padding)"
        )


def run(config: dict) -> dict | None:
    """One configuration in a fresh process, so that its peak RSS is its own."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(config)], capture_output=True, check=False, text=True
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        print(f"{config['name']}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(line[len("RESULT ") :])


def compare_curves(fp32: dict, bf16: dict) -> None:
    print("\n| step | train loss fp32 | train loss bf16 | validation loss fp32 | validation loss bf16 |")
    print("|---|---|---|---|---|")
    train = {k: [dict(r["train_loss"]).get(k) for r in (fp32, bf16)] for k, _ in fp32["train_loss"]}
    evals = {k: [dict(r["eval_loss"]).get(k) for r in (fp32, bf16)] for k, _ in fp32["eval_loss"]}

    def cell(x):
        return "-" if x is None else f"{x:.4f}"

    for step in sorted(set(train) | set(evals)):
        a, b = train.get(step, [None, None])
        c, d = evals.get(step, [None, None])
        print(f"| {step} | {cell(a)} | {cell(b)} | {cell(c)} | {cell(d)} |")
    for what, table in (("train", train), ("validation", evals)):
        if not table:
            continue
        last = max(table)
        a, b = table[last]
        if a is None or b is None:
            continue
        gap = abs(b - a) / a
        verdict = "within" if gap <= CURVE_TOLERANCE else "OUTSIDE"
        print(
            f"final {what} loss (step {last}): fp32 {a:.4f}, bf16 {b:.4f}, {100 * gap:.1f} % apart "
            f"({verdict} the {100 * CURVE_TOLERANCE:.0f} % tolerance)"
        )


def compile_gain(results: list[dict]) -> None:
    """Each compiled bare loop against the eager one of the same precision: what the first step
    costs, what a later step saves, and so after how many steps compiling has paid for itself."""
    by_name = {r["name"]: r for r in results}
    for compiled in [r for r in results if " compiled" in r["name"]]:
        eager = by_name.get(compiled["name"].replace(" compiled", ""))
        if eager is None or len(eager["step_s"]) < 2 or len(compiled["step_s"]) < 2:
            continue
        later, later_eager = (statistics.median(r["step_s"][1:]) for r in (compiled, eager))
        first = compiled["step_s"][0] - eager["step_s"][0]
        saved = later_eager - later
        verdict = f"pays for itself after {first / saved:.0f} steps" if saved > 0 else "never pays for itself"
        print(
            f"{compiled['name']}: first step {compiled['step_s'][0]:.1f} s against {eager['step_s'][0]:.1f} s eager; "
            f"later steps {later:.2f} s against {later_eager:.2f} s (median); {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--only", default=None, help="run configurations whose name contains this")
    parser.add_argument("--curves", action="store_true", help="fp32 against bf16 loss curves instead of speeds")
    parser.add_argument("--padding", default=None, metavar="SFT_JSONL", help="count the padding of this set instead")
    parser.add_argument("--batch", type=int, default=8, help="batch size for --padding")
    parser.add_argument("--epochs", type=int, default=3, help="epochs for --padding")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(json.loads(args.one))), flush=True)
        return
    if args.padding:
        padding(args.padding, args.batch, args.epochs)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = str(make_data(folder))
    if args.curves:
        if not fast_on_cpu("bfloat16"):
            raise SystemExit(f"--curves compares bf16 with fp32, and this CPU ({cpu_description()}) has no bf16 units")
        fp32, bf16 = (run(c) for c in curves(data, folder, args.steps))
        if fp32 and bf16:
            compare_curves(fp32, bf16)
        return
    results = []
    for config in configurations(data, folder, args.steps):
        if args.only and args.only not in config["name"]:
            continue
        result = run(config)
        if result is None:
            continue
        results.append(result)
        print(
            f"{result['name']:36s} {result['tokens_per_s']:7.1f} tok/s  {result['s_per_step']:6.2f} s/step  {result['peak_rss_mib']:6d} MiB peak  "
            f"(batch {result['batch_size']}, max_length {result['max_length']}, packing {result['packing']}, {result['loss']})",
            flush=True,
        )
    compile_gain(results)
    if not fast_on_cpu("bfloat16"):
        print(f"no bf16 rows: this CPU ({cpu_description()}) has no bf16 units")
    print(json.dumps({"machine": platform.platform(), "steps": args.steps, "results": results}, indent=2))


if __name__ == "__main__":
    main()
