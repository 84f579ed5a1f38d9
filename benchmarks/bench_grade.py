"""Grading throughput: handful's grader (inline, 1 and 2 worker processes) next to calling
math-verify serially, on 800 published model answers; then the worst case, a batch with
answers whose check would run for hours. Each configuration runs in a fresh process, so
that none profits from caches another one warmed.

    python benchmarks/bench_grade.py [--data ../shared/data] [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from handful.grading import Grader, GradeRequest

HANG = "\\boxed{9^{9^{9^{9}}}}"  # sympy would work on this for hours


def load(data: Path) -> list[GradeRequest]:
    text = (data / "graded_outputs/qwen25math_rm_maj_example/math_cot_100.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [GradeRequest(text, r["answer"]) for r in rows for text in r["code"]]


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
    args = parser.parse_args()
    requests = load(args.data)
    if args.only:
        workers = CONFIGS[args.only]
        t = serial_math_verify(requests) if workers is None else handful_grader(requests, workers, args.timeout)
        print(t)
        return
    n = len(requests)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{n} answers (Qwen2.5-Math MATH outputs), timeout {args.timeout} s\n")
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
