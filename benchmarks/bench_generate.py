"""Generation speed of the `hf` engine on SmolLM2-135M-Instruct in each dtype (fp32, int8, and bf16
where this CPU has bf16 units), side by side in one run with (a) this machine's FLOP ceiling,
(b) llama.cpp's server (Q4_1, the same GGUF) on the same prompts, and (c) lm-evaluation-harness's
HF backend on the same prompts, if it is installed, and (d) the same engine keeping finished rows
in the batch to the end, as one transformers generate call does.

    python benchmarks/bench_generate.py [--max-tokens 256] [--batches 1,8,32,64] [--dtypes float32,int8,bfloat16]
                                        [--repeats 1] [--skip-dynamic] [--skip-kept] [--skip-llama] [--skip-lm-eval]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from handful.benchmarks import load_benchmark
from handful.engines import hf_rows
from handful.engines.base import Prompt
from handful.engines.hf import HFEngine
from handful.hardware import cpu_description, slow_dtype
from handful.models import MODELS, _gguf_source, resolve
from handful.prompts import render
from handful.records import SamplingParams


def matmul_gflops(size: int = 2048, repeats: int = 10, dtype=torch.float32) -> float:
    """The best of three timings: a first bf16 product also pays for oneDNN's kernel generation."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def prompts_for(engine: HFEngine, count: int) -> list[Prompt]:
    problems = load_benchmark("gsm8k")[:count]
    return [Prompt(problem_id=p.id, benchmark="gsm8k", text=render(p, engine.spec, engine.tokenizer)) for p in problems]


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def lm_eval_tokens_per_s(path: str, prompts: list[Prompt], batch: int, max_tokens: int, tokenizer) -> float | None:
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None
    lm = HFLM(pretrained=path, batch_size=batch, device="cpu", dtype="float32")
    requests = [
        Instance(
            request_type="generate_until",
            doc={},
            idx=i,
            arguments=(p.text, {"until": ["<|im_end|>"], "max_gen_toks": max_tokens, "do_sample": False}),
        )
        for i, p in enumerate(prompts)
    ]
    seconds, tokens = timed(
        lambda: sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in lm.generate_until(requests))
    )
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--dtypes", default="float32,int8,bfloat16", help="dtypes of the hf engine rows")
    parser.add_argument("--skip-dynamic", action="store_true", help="skip the fp32 DynamicCache comparison rows")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each row, in turn; the median is shown")
    parser.add_argument("--skip-kept", action="store_true", help="skip the rows that keep finished rows in the batch")
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--skip-lm-eval", action="store_true")
    args = parser.parse_args()
    sampling = SamplingParams(max_tokens=args.max_tokens)
    model = resolve("smollm2-135m")
    engine, loaded = HFEngine(model, batch_size=1), "float32"
    params = sum(p.numel() for p in engine.model.parameters())  # lm_head is tied: counted once, used once
    flop_per_token = 2 * params / 1e9
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_description()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    # A dtype's ceiling is its own matmul rate over the model's FLOPs per token; int8 is held to
    # fp32's, the rate of the float32 activations it starts from.
    ceilings = {}
    for name in ("float32", "bfloat16"):
        if slow_dtype(name, "cpu"):
            continue
        gflops = matmul_gflops(dtype=getattr(torch, name))
        ceilings[name] = gflops / flop_per_token
        print(
            f"{name} matmul 2048^3: {gflops:.0f} GFLOP/s; {flop_per_token:.2f} GFLOP per token "
            f"-> ceiling {ceilings[name]:.0f} tok/s"
        )
    print(f"max {args.max_tokens} new tokens per prompt, greedy, GSM8K prompts with the chat template\n")
    print("| engine | batch | prompts | tokens | seconds | tok/s | % of its ceiling |\n|---|---|---|---|---|---|---|")

    def row(name, batch, count, tokens, seconds, dtype="float32"):
        share = 100 * tokens / seconds / ceilings.get(dtype, ceilings["float32"])
        print(
            f"| {name} | {batch} | {count} | {tokens} | {seconds:.1f} | {tokens / seconds:.1f} | {share:.0f} % |",
            flush=True,
        )

    batches = [int(b) for b in args.batches.split(",")]
    for dtype in args.dtypes.split(","):
        slow = slow_dtype(dtype, "cpu")
        if slow:
            print(f"| handful hf {dtype} | - | - | - | - | skipped: {slow} | - |", flush=True)
            continue
        if dtype != loaded:
            engine.close()
            engine, loaded = HFEngine(model, batch_size=1, dtype=dtype), dtype
        for batch in batches:
            engine.batch_size = batch
            prompts = prompts_for(engine, max(4, batch))
            # (label, growing cache, share of finished rows at which they leave the batch). The
            # comparison rows run where they mean something: finished rows kept at batch > 1, and
            # transformers' DynamicCache (which also keeps them) once, in fp32.
            variants = [(f"handful hf {dtype}", True, hf_rows.DROP_SHARE)]
            if batch > 1 and not args.skip_kept:
                variants.append(("same, finished rows kept in the batch", True, None))
            if not args.skip_dynamic and dtype == "float32":
                variants.append(("same, transformers' DynamicCache, rows kept", False, None))
            # Each variant runs `--repeats` times, the variants in turn (A B A B ...), and its median
            # time is reported: the machine's speed drifts, and the first run after a load is slower.
            times = {label: [] for label, _, _ in variants}
            for _ in range(args.repeats):
                for label, growing, share in variants:
                    engine.growing_cache, hf_rows.DROP_SHARE = growing, share
                    seconds, tokens = timed(
                        lambda: sum(g.completion_tokens for g in engine.generate(prompts, sampling))  # noqa: B023
                    )
                    times[label].append((seconds, tokens))
            for label, runs in times.items():
                seconds, tokens = sorted(runs)[len(runs) // 2]
                row(label, batch, len(prompts), tokens, seconds, dtype)
            engine.growing_cache, hf_rows.DROP_SHARE = True, variants[0][2]

    if not args.skip_lm_eval:
        for batch in (1, batches[-1]):
            prompts = prompts_for(engine, max(4, batch))
            rate = lm_eval_tokens_per_s(model.path, prompts, batch, args.max_tokens, engine.tokenizer)
            if rate is None:
                print("| lm-eval HF backend | - | - | - | - | not installed | - |")
                break
            print(
                f"| lm-eval HF backend | {batch} | {len(prompts)} | - | - | {rate:.1f} | {100 * rate / ceilings['float32']:.0f} % |",
                flush=True,
            )

    if not args.skip_llama:
        from handful.engines.llama_server import LlamaServer
        from handful.engines.server import OpenAIEngine

        folder, name = _gguf_source(MODELS["smollm2-135m"])
        server = LlamaServer(folder / name, Path("/tmp/bench-llama-server.log"), alias="smollm2-135m")
        try:
            client = OpenAIEngine(
                "smollm2-135m", model.spec, base_url=server.url, tokenizer=engine.tokenizer, concurrency=1
            )
            prompts = prompts_for(engine, 4)
            client.generate(prompts[:1], sampling)  # warm-up
            seconds, tokens = timed(lambda: sum(g.completion_tokens for g in client.generate(prompts, sampling)))
            row("llama.cpp server (Q4_1, one request at a time)", 1, len(prompts), tokens, seconds)
        finally:
            server.close()


if __name__ == "__main__":
    main()
