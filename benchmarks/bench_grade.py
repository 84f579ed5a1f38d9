"""Grading quality and throughput.

Agreement: handful's grader, plain `math_verify.verify(parse(gold), parse(pred))` and the
second grader of `handful audit` (rules in the style of Qwen2.5-Math's evaluation) against
the published correctness labels of three sets of model outputs (Qwen2.5-Math MATH outputs
labelled by its rule grader, GSM8K solutions labelled by their authors' final-number check,
Sky-T1 long reasoning traces labelled by a Qwen-style grader), with each disagreement's
direction, so that a grader that is right where a label is wrong can be told apart.

Throughput: handful's grader (inline, 1 and 2 worker processes) next to calling math-verify
serially, on 800 published model answers; then the worst case, a batch with answers whose
check would run for hours. Each configuration runs in a fresh process, so that none profits
from caches another one warmed.

    python benchmarks/bench_grade.py [--data ../shared/data] [--timeout 5] [--skip-speed] [--show 5]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from scipy.stats import binomtest

from handful.grading import Grader, GradeRequest

HANG = "\\boxed{9^{9^{9^{9}}}}"  # sympy would work on this for hours


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def qwen_math(data: Path) -> list[tuple[GradeRequest, bool]]:
    rows = _rows(data / "graded_outputs/qwen25math_rm_maj_example/math_cot_100.jsonl")
    return [(GradeRequest(text, r["answer"]), label) for r in rows for text, label in zip(r["code"], r["score"])]


def gsm8k_solutions(data: Path) -> list[tuple[GradeRequest, bool]]:
    out = []
    for r in _rows(data / "graded_outputs/gsm8k_openai_example_model_solutions/example_model_solutions.jsonl"):
        gold = r["ground_truth"].strip().splitlines()[-1].removeprefix("A:").strip()
        for system in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            out.append((GradeRequest(r[system]["solution"], gold), r[system]["is_correct"]))
    return out


def sky_t1_traces(data: Path) -> list[tuple[GradeRequest, bool]]:
    delimiters = ("<|begin_of_thought|>", "<|end_of_thought|>")
    out = []
    for path in sorted((data / "traces/skythought_sky_t1_long_cot").glob("*/*.jsonl")):
        for r in _rows(path):
            # Some files store these lists as their Python text.
            code, score = (x if isinstance(x, list) else ast.literal_eval(x) for x in (r["code"], r["score"]))
            out.append((GradeRequest(code[0], str(r["answer"]), thinking_delimiters=delimiters), score[0]))
    return out


SETS = {
    "Qwen2.5-Math outputs, MATH (Qwen rule labels)": qwen_math,
    "GSM8K solutions, 4 GPT-3 systems (final-number labels)": gsm8k_solutions,
    "Sky-T1 long reasoning traces (Qwen-style labels)": sky_t1_traces,
}


def load(data: Path) -> list[GradeRequest]:
    return [request for request, _ in qwen_math(data)]


def plain_math_verify(requests: list[GradeRequest]) -> list[bool]:
    from math_verify import parse, verify

    verdicts = []
    for r in requests:
        try:
            verdicts.append(bool(verify(parse(r.gold), parse(r.pred))))
        except Exception:  # noqa: BLE001 - a crash is a miss, as for any user of the plain call
            verdicts.append(False)
    return verdicts


def handful_verdicts(requests: list[GradeRequest], timeout: float) -> list[bool]:
    with Grader(workers=2, timeout=timeout) as grader:
        return [g.correct for g in grader.grade(requests)]


def audit_verdicts(requests: list[GradeRequest], timeout: float) -> list[bool]:
    from handful import rule_grader

    return [g.correct for g in rule_grader.grade(requests, workers=2, timeout=timeout)]


GRADERS = {
    "handful": handful_verdicts,
    "plain math-verify": lambda requests, timeout: plain_math_verify(requests),
    "handful audit (rules)": audit_verdicts,
}


def agreement(data: Path, timeout: float, show: int) -> None:
    print("| set | grader | answers | agree with label | 95 % CI | says correct, label not | label correct, says not |")
    print("|---|---|---|---|---|---|---|")
    examples = []
    for name, load_set in SETS.items():
        pairs = load_set(data)
        requests, labels = [r for r, _ in pairs], [label for _, label in pairs]
        for grader, verdicts_of in GRADERS.items():
            verdicts = verdicts_of(requests, timeout)
            agree = sum(v == label for v, label in zip(verdicts, labels))
            ci = binomtest(agree, len(labels)).proportion_ci(method="wilson")
            over = [i for i, (v, label) in enumerate(zip(verdicts, labels)) if v and not label]
            under = [i for i, (v, label) in enumerate(zip(verdicts, labels)) if label and not v]
            print(
                f"| {name} | {grader} | {len(labels)} | {agree / len(labels):.2%} | "
                f"[{ci.low:.2%}, {ci.high:.2%}] | {len(over)} | {len(under)} |"
            )
            if grader == "handful":
                examples += [(name, "says correct, label not", requests[i]) for i in over[:show]]
                examples += [(name, "label correct, says not", requests[i]) for i in under[:show]]
    if examples:
        print("\nhandful's disagreements (first of each kind; reference, then the output's last 160 characters):")
    for name, kind, r in examples:
        print(f"- {name}, {kind}: gold {r.gold!r}: ...{r.pred[-160:]!r}")


def serial_math_verify(requests: list[GradeRequest]) -> float:
    from math_verify import parse, verify

    start = time.perf_counter()
    for r in requests:
        verify(parse(f"${r.gold}$"), parse(r.pred))
    return time.perf_counter() - start


def handful_grader(requests: list[GradeRequest], workers: int, timeout: float) -> float:
    start = time.perf_counter()
    with Grader(workers=workers, timeout=timeout) as grader:
        grader.grade(requests)
    return time.perf_counter() - start


def math_verify_on_hang(limit: float) -> str:
    code = f"from math_verify import parse, verify\nverify(parse('$5$'), parse({HANG!r}))\n"
    start = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", code], timeout=limit, capture_output=True, check=False)
        return f"{time.perf_counter() - start:.1f} s"
    except subprocess.TimeoutExpired:
        return f"still running after {limit:.0f} s (killed)"


CONFIGS = {
    "math-verify serial (parse+verify, main thread)": None,
    "handful inline (workers=0)": 0,
    "handful 1 worker": 1,
    "handful 2 workers": 2,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="fresh runs per configuration; the best is shown")
    parser.add_argument("--only", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--skip-speed", action="store_true", help="only the agreement table")
    parser.add_argument("--show", type=int, default=5, help="disagreements of each kind to print per set")
    args = parser.parse_args()
    requests = load(args.data)
    if args.only:
        workers = CONFIGS[args.only]
        t = serial_math_verify(requests) if workers is None else handful_grader(requests, workers, args.timeout)
        print(t)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    agreement(args.data, args.timeout, args.show)
    if args.skip_speed:
        return
    n = len(requests)
    print(f"\n{n} answers (Qwen2.5-Math MATH outputs), timeout {args.timeout} s\n")
    print(f"| grader | best of {args.repeat} (s) | answers/s | all runs (s) |\n|---|---|---|---|")
    for label in CONFIGS:
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--data", str(args.data), "--timeout", str(args.timeout), "--only", label],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(float(out.stdout.strip().splitlines()[-1]))
        t = min(runs)
        print(f"| {label} | {t:.2f} | {n / t:.0f} | {', '.join(f'{r:.2f}' for r in runs)} |")

    hangs = [GradeRequest(HANG, "5")] * 4 + requests[:100]
    t = handful_grader(hangs, 2, args.timeout)
    print(
        f"\nworst case: 4 checks that would run for hours + 100 normal, 2 workers: {t:.1f} s "
        f"(each slow check is cut at {args.timeout:.0f} s)"
    )
    print(
        f"math-verify alone on one such check (its own 5 s alarm, main thread): {math_verify_on_hang(4 * args.timeout)}"
    )


if __name__ == "__main__":
    main()
