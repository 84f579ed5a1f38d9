"""Dedup and decontamination throughput and memory: handful against the straightforward
Python n-gram-set approach, side by side, on the real pools and on a synthetic pool.

    python benchmarks/bench_curate.py                      # real pools + 1,000,000 synthetic
    python benchmarks/bench_curate.py --synthetic 100000   # a quicker run
    python benchmarks/bench_curate.py --only dedup         # one family

Each measurement runs in a fresh process (so peak RSS belongs to it alone); the pool is
built before the clock starts and its memory is reported apart from the method's.

Methods:
- decontam/handful: `NgramIndex` containment (numpy), the rule `handful curate` uses.
- decontam/python-containment: the same rule in plain Python (dict of n-gram -> items,
  a Counter per problem): the equal-recall baseline.
- decontam/python-any-8gram: s1's and open-r1's rule (flag on any shared 8-gram of
  lowercased words): fast, but see its false flags.
- dedup/handful: numpy MinHash signatures, banded in numpy (datasketch's bands and rows).
- dedup/datasketch-plain: a `MinHash` per problem with `update_batch` over shingles, then
  the same LSH: the way the library is usually used.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

BENCH = ["math500", "aime24", "aime25", "amc23", "gsm8k", "minerva", "olympiadbench", "math"]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def synthetic(size: int, seed: int = 0) -> list[str]:
    """Real MATH train problems with their numbers redrawn: realistic text, mostly distinct."""
    from handful.curation.pools import load_pool

    base = [p.question for p in load_pool("math-train")]
    rng = random.Random(seed)
    number = re.compile(r"\d+")
    out = []
    for i in range(size):
        text = base[i % len(base)]
        if i >= len(base):
            text = number.sub(lambda m: str(rng.randint(1, 999)), text)
        out.append(text)
    return out


def pool_texts(name: str, size: int) -> list[str]:
    from handful.curation.pools import load_pool

    if name == "synthetic":
        return synthetic(size)
    return [p.question for p in load_pool(name)]


def bench_items() -> list[str]:
    from handful.benchmarks import load_benchmark

    return [p.question for b in BENCH for p in load_benchmark(b)]


# --- baselines, written the straightforward way -------------------------------------


def words(text: str) -> list[str]:
    return text.lower().split()


def any_8gram(pool: list[str], items: list[str]) -> int:
    grams = set()
    for text in items:
        w = words(text)
        grams.update(" ".join(w[i : i + 8]) for i in range(len(w) - 7))
    flagged = 0
    for text in pool:
        w = words(text)
        if any(" ".join(w[i : i + 8]) in grams for i in range(len(w) - 7)):
            flagged += 1
    return flagged


def python_containment(pool: list[str], items: list[str], n: int = 5, flag: float = 0.6, max_df: int = 20) -> int:
    from handful.curation.text import tokens

    def grams(text):
        t = tokens(text)
        return {tuple(t[i : i + n]) for i in range(len(t) - n + 1)} if len(t) >= n else ({tuple(t)} if t else set())

    holders: dict[tuple, list[int]] = defaultdict(list)
    sizes = []
    for j, text in enumerate(items):
        g = grams(text)
        sizes.append(len(g))
        for gram in g:
            holders[gram].append(j)
    holders = {k: v for k, v in holders.items() if len(v) <= max_df}
    flagged = 0
    for text in pool:
        g = grams(text)
        shared = Counter(j for gram in g for j in holders.get(gram, ()))
        if any(c / max(len(g), sizes[j], 1) >= flag for j, c in shared.items()):
            flagged += 1
    return flagged


def handful_containment(pool: list[str], items: list[str], batch: int = 20000) -> int:
    from handful.curation.decontam import NgramIndex

    index = NgramIndex(items, 5, 20)
    flagged = 0
    for start in range(0, len(pool), batch):
        flagged += len({o.doc for o in index.overlaps(pool[start : start + batch], 0.6)})
    return flagged


def handful_dedup(pool: list[str]) -> int:
    from handful.curation.dedup import exact_duplicates, near_duplicates

    exact = exact_duplicates(pool)
    return len(exact) + len(near_duplicates(pool, threshold=0.7, skip=set(exact)))


def datasketch_plain(pool: list[str]) -> int:
    from datasketch import MinHash, MinHashLSH

    from handful.curation.dedup import exact_duplicates
    from handful.curation.text import tokens

    exact = exact_duplicates(pool)
    lsh = MinHashLSH(threshold=0.7, num_perm=64)
    found = 0
    for i, text in enumerate(pool):
        if i in exact:
            continue
        t = tokens(text)
        m = MinHash(num_perm=64)
        m.update_batch([" ".join(t[k : k + 3]).encode() for k in range(max(len(t) - 2, 1))])
        if any(m.jaccard(lsh_m) >= 0.7 for lsh_m in (kept[j] for j in lsh.query(m))):
            found += 1
        else:
            lsh.insert(i, m, check_duplication=False)
            kept[i] = m
    return len(exact) + found


kept: dict = {}

METHODS = {
    "decontam/handful": lambda pool, items: handful_containment(pool, items),
    "decontam/python-containment": lambda pool, items: python_containment(pool, items),
    "decontam/python-any-8gram": lambda pool, items: any_8gram(pool, items),
    "dedup/handful": lambda pool, items: handful_dedup(pool),
    "dedup/datasketch-plain": lambda pool, items: datasketch_plain(pool),
}


def one(method: str, pool_name: str, size: int) -> dict:
    pool = pool_texts(pool_name, size)
    items = bench_items() if method.startswith("decontam") else []
    before = current_rss_mib()
    start = time.perf_counter()
    flagged = METHODS[method](pool, items)
    seconds = time.perf_counter() - start
    return {
        "method": method,
        "pool": pool_name,
        "problems": len(pool),
        "flagged": flagged,
        "seconds": round(seconds, 2),
        "problems_per_s": round(len(pool) / seconds),
        "pool_rss_mib": round(before),
        "peak_rss_mib": round(rss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", type=int, default=1_000_000)
    parser.add_argument("--pools", default="math-train,aime,omni-math,gsm8k-train")
    parser.add_argument("--skip", default="", help="comma-separated methods to leave out on the synthetic pool")
    parser.add_argument("--only", default="", help="run only the methods starting with this (decontam or dedup)")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "POOL", "SIZE"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], int(args.one[2]))))
        return
    methods = [m for m in METHODS if m.startswith(args.only)]
    runs = [(m, p, 0) for p in args.pools.split(",") for m in methods]
    runs += [(m, "synthetic", args.synthetic) for m in methods if m not in args.skip.split(",")]
    rows = []
    for method, pool, size in runs:
        done = subprocess.run(
            [sys.executable, __file__, "--one", method, pool, str(size)], capture_output=True, check=False, text=True
        )
        if done.returncode:
            print(f"{method} on {pool}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['method']:30} {row['pool']:12} {row['problems']:>9} problems  {row['seconds']:>8.2f} s  {row['problems_per_s']:>8}/s  "
            f"flagged {row['flagged']:>7}  peak {row['peak_rss_mib']} MiB (pool alone {row['pool_rss_mib']} MiB)",
            flush=True,
        )
    print(
        json.dumps(
            {"machine": platform.processor() or platform.machine(), "python": platform.python_version(), "rows": rows},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
