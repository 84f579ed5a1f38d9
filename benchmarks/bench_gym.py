"""SmolLM2-135M-Instruct (base) on ten Reasoning Gym datasets at easy settings, each with its
95 % interval, and on tasks both handful and reasoning-gym generate, at matched difficulty.

    python benchmarks/bench_gym.py [--n 20] [--max-tokens 192] [--out /tmp/bench-gym]

Greedy; the seeds are fixed below, so a rerun asks the same problems (and resumes).
"""

from __future__ import annotations

import argparse

from handful.config import EvalConfig
from handful.evaluation import evaluate

EASY = [
    "dyn:rg/basic_arithmetic?max_terms=2&max_digits=1&allow_parentheses=false&allow_negation=false",
    "dyn:rg/chain_sum?max_terms=2&max_digits=1",
    "dyn:rg/gcd?max_value=20",
    "dyn:rg/lcm?max_value=10",
    "dyn:rg/letter_counting?min_words=3&max_words=5",
    "dyn:rg/spell_backward?max_word_len=4",
    "dyn:rg/number_sorting?max_numbers=3&max_decimals=0",
    "dyn:rg/leg_counting?min_animals=1&max_animals=2&max_instances=3",
    "dyn:rg/simple_equations?max_terms=2&max_value=10",
    "dyn:rg/syllogism",
]
# The same task from both: (handful's spec, reasoning-gym's spec at the same difficulty).
MATCHED = [
    (
        "dyn:addition?digits=2",
        (
            "dyn:rg/basic_arithmetic?min_terms=2&max_terms=2&min_digits=2&max_digits=2&operators=%2B"
            "&allow_parentheses=false&allow_negation=false"
        ),
    ),
    (
        "dyn:countdown?numbers=3",
        "dyn:rg/countdown?min_numbers=3&max_numbers=3&max_value=80&min_target=10&max_target=150",
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--out", default="/tmp/bench-gym")
    args = parser.parse_args()
    specs = EASY + [spec for pair in MATCHED for spec in pair]
    cfg = EvalConfig(
        model="smollm2-135m",
        benchmarks=[f"{s}{'&' if '?' in s else '?'}n={args.n}&seed=2026" for s in specs],
        sampling={"temperature": 0.0, "max_tokens": args.max_tokens},
        engine={"batch_size": 48},
    )
    scores = evaluate(cfg, args.out).benchmarks
    print("| benchmark | problems | accuracy [95 % CI] |\n|---|---|---|")
    for name, s in scores.items():
        print(f"| `{name}` | {s.n_problems} | {s.accuracy:.2f} [{s.ci95[0]:.2f}, {s.ci95[1]:.2f}] |")


if __name__ == "__main__":
    main()
