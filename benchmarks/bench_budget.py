"""Cost of budget forcing on the `hf` engine (SmolLM2-135M, fp32), side by side:

1. overhead: budget-forced generation (min = max thinking tokens) against unforced
   generation of the same number of tokens, same batch, same cache;
2. "Wait" rounds: handful's forcing inside one generate call against s1's approach, which
   stops at the end of thinking, appends "Wait" and calls generate again on the whole text
   (prefilling it again), at 1, 2 and 4 rounds.

A line break stands for the end of thinking, so that SmolLM2, which was never taught to
think in delimiters, tries to stop often enough for rounds to happen.

    python benchmarks/bench_budget.py [--prompts 8] [--thinking 128]
"""

from __future__ import annotations

import argparse
import time

import torch

from handful.benchmarks import load_benchmark
from handful.budget import Budget
from handful.engines.base import Prompt
from handful.engines.hf import HFEngine
from handful.engines.kv_cache import growing_cache
from handful.models import resolve
from handful.prompts import render
from handful.records import SamplingParams


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def plain_generate(engine: HFEngine, texts: list[str], new_tokens: int, stop: list[str] | None = None):
    """transformers' generate with exactly `new_tokens` (or until `stop`), the same cache as the engine."""
    tok = engine.tokenizer
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id, cache=growing_cache())
    if stop:
        kwargs.update(stop_strings=stop, tokenizer=tok)
    else:
        kwargs.update(min_new_tokens=new_tokens)
    with torch.inference_mode():
        out = engine.model.generate(**enc, **kwargs)
    width = enc["input_ids"].shape[1]
    return [tok.decode([t for t in row[width:].tolist() if t != tok.pad_token_id]) for row in out]


def reprefill_rounds(engine: HFEngine, texts: list[str], rounds: int, budget: int, answer: int) -> int:
    """s1's way: generate to the end of thinking, append ' Wait', start again on the whole text."""
    tokens = 0
    for _ in range(rounds + 1):
        pieces = plain_generate(engine, texts, budget, stop=["\n"])
        tokens += sum(len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in pieces)
        texts = [t + p.rstrip("\n") + " Wait" for t, p in zip(texts, pieces)]
    finals = plain_generate(engine, [t + "\n" for t in texts], answer)
    return tokens + sum(len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in finals)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--thinking", type=int, default=128)
    args = parser.parse_args()
    model = resolve("smollm2-135m", {"open_thinking": True})
    engine = HFEngine(model, batch_size=args.prompts)
    problems = load_benchmark("gsm8k")[: args.prompts]
    prompts = [Prompt(problem_id=p.id, text=render(p, model.spec, engine.tokenizer)) for p in problems]
    texts = [p.text for p in prompts]
    answer = 32
    sampling = SamplingParams(max_tokens=args.thinking + answer + 8)

    print(f"SmolLM2-135M fp32, {args.prompts} GSM8K prompts in one batch, greedy\n")
    print("| run | seconds | tokens | ms per token |\n|---|---|---|---|")
    plain_generate(engine, texts[:1], 4)  # warm-up
    budget = Budget(
        min_thinking_tokens=args.thinking, max_thinking_tokens=args.thinking, answer_prefix="\n\nFinal Answer:"
    )
    seconds, gens = timed(lambda: engine.generate(prompts, sampling, budget=budget))
    forced_tokens = sum(g.completion_tokens for g in gens)
    print(
        f"| budget-forced, {args.thinking} thinking tokens | {seconds:.1f} | {forced_tokens} | {1000 * seconds / forced_tokens:.1f} |"
    )
    per_row = forced_tokens // len(prompts)
    seconds, _ = timed(lambda: plain_generate(engine, texts, per_row))
    print(
        f"| unforced, {per_row} tokens per row | {seconds:.1f} | {per_row * len(prompts)} | {1000 * seconds / (per_row * len(prompts)):.1f} |"
    )

    line_model = resolve("smollm2-135m", {"open_thinking": True, "think_close": "\n"})
    engine.spec = line_model.spec
    line_prompts = [Prompt(problem_id=p.id, text=render(p, line_model.spec, engine.tokenizer)) for p in problems]
    for rounds in (1, 2, 4):
        waits = Budget(max_waits=rounds, max_thinking_tokens=args.thinking, continuation="Wait")
        seconds, gens = timed(lambda: engine.generate(line_prompts, sampling, budget=waits))  # noqa: B023 (called at once)
        tokens = sum(g.completion_tokens for g in gens)
        print(
            f"| handful, {rounds} Wait round(s) in one generate | {seconds:.1f} | {tokens} | {1000 * seconds / tokens:.1f} |"
        )
        seconds, tokens = timed(
            lambda: reprefill_rounds(engine, [p.text for p in line_prompts], rounds, args.thinking, answer)  # noqa: B023
        )
        print(
            f"| s1-style re-prefill, {rounds} round(s) | {seconds:.1f} | {tokens} | {1000 * seconds / tokens:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
