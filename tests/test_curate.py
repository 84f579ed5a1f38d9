import json
import logging
import random
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handful.benchmarks import load_benchmark
from handful.curation import CurateConfig, curate, rules
from handful.curation.difficulty import verdict
from handful.curation.pools import load_pool
from handful.curation.select import label, select, trace_length
from handful.errors import ConfigError, RecordError
from handful.records import Problem, Removal, read_jsonl, write_jsonl

SYNONYMS = [
    ("Find", "Determine"),
    ("What is", "Compute"),
    ("number", "amount"),
    ("positive", "strictly positive"),
    ("the value of", "the value for"),
]


def renumber(text: str, rng: random.Random) -> str:
    """Change up to two numbers: the same problem with other values."""
    numbers = list(re.finditer(r"(?<![\w\\])\d+", text))
    for m in sorted(rng.sample(numbers, min(2, len(numbers))), key=lambda m: -m.start()):
        text = text[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + text[m.end() :]
    return text


def reword(text: str, rng: random.Random) -> str:
    for old, new in SYNONYMS:
        text = text.replace(old, new, 1)
    return text.replace("\\frac", "\\dfrac").replace("=", " = ")


def planted_pool(shared_seed: int = 0):
    """Real MATH train problems, plus planted exact copies, near copies and edited
    MATH-500 problems; returns (pool, {id: what was planted})."""
    rng = random.Random(shared_seed)
    base = rng.sample(load_pool("math-train"), 400)
    bench = [p for p in rng.sample(load_benchmark("math500"), 60) if len(p.question.split()) >= 12][:40]
    planted, truth = [], {}
    for i, p in enumerate(base[:25]):
        planted.append(
            p.model_copy(update={"id": f"exact-{i}", "question": "  " + p.question.replace(" ", "  ") + "\n"})
        )
        truth[f"exact-{i}"] = ("dedup", p.id)
    for i, p in enumerate(base[25:50]):
        edit = renumber if i % 2 else reword
        planted.append(p.model_copy(update={"id": f"near-{i}", "question": edit(p.question, rng)}))
        truth[f"near-{i}"] = ("dedup", p.id)
    for i, p in enumerate(bench):
        edit = [renumber, reword, lambda t, r: t.replace("$", " $ ")][i % 3]
        planted.append(
            Problem(
                id=f"bench-{i}", source="planted", question=edit(p.question, rng), answer=p.answer, solution=p.solution
            )
        )
        truth[f"bench-{i}"] = ("decontaminate", p.id)
    pool = base + planted
    rng.shuffle(pool)
    return pool, truth


def run_pool(tmp_path, problems, **settings):
    path = tmp_path / "pool.jsonl"
    write_jsonl(path, problems)
    cfg = CurateConfig.model_validate({"pools": [str(path)], "target": 10_000, **settings})
    funnel = curate(cfg, tmp_path / "out")
    return funnel, read_jsonl(tmp_path / "out" / "removed.jsonl", Removal, allow_empty=True)


def test_planted_duplicates_and_benchmark_copies_are_found_and_little_else(tmp_path):
    pool, truth = planted_pool()
    _, removed = run_pool(tmp_path, pool, decontaminate={"benchmarks": ["math500"]})
    by_id = {r.id: r for r in removed}

    def caught(pid, stage, original):
        if stage == "decontaminate":
            return pid in by_id and by_id[pid].stage == stage
        # A copy and its original are one cluster: whichever comes first in the pool stays.
        return any(
            a in by_id and by_id[a].stage == stage and by_id[a].evidence["duplicate_of"] == b
            for a, b in ((pid, original), (original, pid))
        )

    for stage in ("dedup", "decontaminate"):
        wanted = [(pid, original) for pid, (s, original) in truth.items() if s == stage]
        missed = [pid for pid, original in wanted if not caught(pid, stage, original)]
        assert 1 - len(missed) / len(wanted) >= 0.9, (stage, missed)
    # False removals: originals removed for anything but being one of a planted pair.
    paired = {original for s, original in truth.values() if s == "dedup"}
    originals = [p for p in pool if p.id not in truth]
    false = [
        by_id[p.id]
        for p in originals
        if p.id in by_id and by_id[p.id].stage in ("dedup", "decontaminate") and p.id not in paired
    ]
    assert len(false) / len(originals) <= 0.02, [(r.id, r.reason) for r in false]


def test_decontamination_names_the_benchmark_item_and_the_shared_text(tmp_path):
    pool, _ = planted_pool()
    _, removed = run_pool(
        tmp_path,
        [p for p in pool if p.id.startswith("bench-")],
        decontaminate={"benchmarks": ["math500"]},
        dedup={"enabled": False},
    )
    r = next(r for r in removed if r.stage == "decontaminate")
    assert r.evidence["benchmark"] == "math500" and r.evidence["item"].startswith("test/") and r.evidence["shared"]
    assert 0.4 <= r.evidence["containment"] <= 1 and "math500" in r.reason


def test_the_aime_pool_loses_its_math500_problems(tmp_path):
    cfg = CurateConfig(
        pools=["aime"], target=5000, decontaminate={"benchmarks": ["math500"]}, select={"enabled": False}
    )
    curate(cfg, tmp_path)
    removed = [r for r in read_jsonl(tmp_path / "removed.jsonl", Removal) if r.stage == "decontaminate"]
    math500 = {p.id: p for p in load_benchmark("math500")}
    # The known exact copies (whitespace aside) are all among them.
    exact = {
        p.id
        for p in load_pool("aime")
        if " ".join(p.question.split()) in {" ".join(q.question.split()) for q in math500.values()}
    }
    assert len(exact) >= 3 and exact <= {r.id for r in removed}
    for r in removed:
        assert r.evidence["item"] in math500 and r.evidence["containment"] >= 0.4
    assert len(removed) <= 15  # the 8-gram rule flags ~30 % of this pool; these are the real copies
    selected = read_jsonl(tmp_path / "selected.jsonl", Problem)
    assert len(selected) == 975 - len(read_jsonl(tmp_path / "removed.jsonl", Removal))


def test_a_rerun_reuses_finished_stages_and_a_change_reruns_only_what_follows(tmp_path, caplog):
    cfg = CurateConfig(pools=["aime"], target=30, decontaminate={"benchmarks": ["aime24", "math500"]})
    with caplog.at_level(logging.INFO, logger="handful.curation"):
        first = curate(cfg, tmp_path)
    # Without on_stage, each stage's count goes to the log.
    counts = [f["count"] for f in first if not f.get("skipped")]
    ran = [f["stage"] for f in first[1:] if not f.get("skipped")]
    assert caplog.messages == [f"{name}: {a} -> {b}" for name, a, b in zip(ran, counts, counts[1:])]
    stamp = {d.name: (d / "done.json").stat().st_mtime_ns for d in (tmp_path / "stages").iterdir()}
    assert curate(cfg, tmp_path) == first
    assert stamp == {d.name: (d / "done.json").stat().st_mtime_ns for d in (tmp_path / "stages").iterdir()}
    second = curate(cfg.model_copy(update={"target": 20}), tmp_path)
    after = {d.name: (d / "done.json").stat().st_mtime_ns for d in (tmp_path / "stages").iterdir()}
    assert [k for k in stamp if stamp[k] != after[k]] == ["6-select"]
    assert second[-1]["count"] == 20 and len(read_jsonl(tmp_path / "selected.jsonl", Problem)) == 20


def test_s1_selection_spreads_over_domains_and_is_seeded(tmp_path):
    cfg = CurateConfig(
        pools=["dyn:probes?n=240&seed=1"],
        target=24,
        normalise={"verifiable": False},
        decontaminate={"enabled": False},
        dedup={"enabled": False},
    )
    curate(cfg, tmp_path / "a")
    picked = read_jsonl(tmp_path / "a" / "selected.jsonl", Problem)
    domains = [p.metadata["curation"]["domain"] for p in picked]
    assert len(set(domains)) >= 9  # 11 tasks, drawn uniformly: few go unpicked in 24 draws
    curate(cfg, tmp_path / "b")
    assert [p.id for p in read_jsonl(tmp_path / "b" / "selected.jsonl", Problem)] == [p.id for p in picked]
    curate(cfg.model_copy(update={"seed": 9}), tmp_path / "c")
    assert [p.id for p in read_jsonl(tmp_path / "c" / "selected.jsonl", Problem)] != [p.id for p in picked]
    # Within a domain the longer traces come first (2**-rank weighting): for each pick, the
    # share of its domain's candidates with a strictly longer trace. Here a uniform draw
    # averages 0.38 (ties count as not longer), shortest-first 0.63, s1's draw 0.08.
    candidates = picked + [
        r.problem for r in read_jsonl(tmp_path / "a" / "removed.jsonl", Removal) if r.stage == "select"
    ]
    by_domain = {}
    for p in candidates:
        by_domain.setdefault(label(p), []).append(trace_length(p))
    longer = [sum(n > trace_length(p) for n in by_domain[label(p)]) / len(by_domain[label(p)]) for p in picked]
    assert sum(longer) / len(longer) < 0.15, longer


def test_s1_draw_prefers_longer_traces_by_halves():
    # One domain of eight problems whose traces are 8, 7, ..., 1 tokens long: the first pick is
    # rank r with probability 2**-r / sum(2**-k), whatever the order they come in.
    problems = [
        Problem(id=f"p{i}", source="t", question=f"q{i}", answer="1", solution=" ".join(["w"] * (8 - i)))
        for i in range(8)
    ]
    order = [3, 7, 0, 5, 1, 6, 2, 4]  # rank of each problem = its index in `problems`
    shuffled = [problems[i] for i in order]
    firsts = Counter(order[select(shuffled, ["d"] * 8, 3, "s1", seed)[0]] for seed in range(2000))
    total = sum(2.0**-r for r in range(8))
    for rank in range(4):
        assert abs(firsts[rank] / 2000 - 2.0**-rank / total) < 0.035, (rank, firsts)
    assert firsts[0] > firsts[1] > firsts[2] > firsts[3] > firsts[7]


def test_s1_draw_picks_domains_uniformly_not_by_size():
    # Two problems in one domain, twenty in the other: s1 draws the domain first, so each
    # domain is the first pick about half the time; stratified follows the sizes.
    problems = [Problem(id=f"p{i}", source="t", question=f"q{i}", answer="1") for i in range(22)]
    names = ["small"] * 2 + ["big"] * 20
    small_first = sum(names[select(problems, names, 2, "s1", seed)[0]] == "small" for seed in range(1000))
    assert 420 < small_first < 580, small_first
    small_share = sum(
        names[i] == "small" for seed in range(200) for i in select(problems, names, 11, "stratified", seed)
    )
    assert small_share == 200  # round(11 * 2 / 22) = 1 per draw


def test_embedding_domains_find_the_tasks_without_labels(tmp_path):
    from handful import tasks
    from handful.curation.select import domains

    problems = tasks.sample("gsm-template", 20, 1) + tasks.sample("system", 20, 1) + tasks.sample("countdown", 20, 1)
    clusters = domains(problems, "embeddings", 3, seed=0)
    truth = [p.metadata["task"] for p in problems]
    purity = sum(
        max(sum(1 for c, t in zip(clusters, truth) if c == k and t == task) for task in set(truth))
        for k in set(clusters)
    ) / len(problems)
    assert purity >= 0.9, purity


def test_difficulty_keeps_what_the_reference_cannot_solve(tiny_model, tmp_path):
    # The program teacher solves every task problem: s1's rule drops them all, LIMO's keeps
    # what is solved at most once in one sample (all of them).
    ref = {"model": str(tiny_model), "engine": {"name": "program"}}
    base = {
        "pools": ["dyn:linear?n=6&seed=2"],
        "target": 100,
        "decontaminate": {"enabled": False},
        "dedup": {"enabled": False},
    }
    s1 = CurateConfig.model_validate({**base, "difficulty": {"enabled": True, "references": [ref]}})
    funnel = curate(s1, tmp_path / "s1")
    assert [f["count"] for f in funnel if f["stage"] == "difficulty"] == [0]
    removed = read_jsonl(tmp_path / "s1" / "removed.jsonl", Removal)
    assert all(r.stage == "difficulty" and r.evidence["solved"] == {f"0-{tiny_model.name}": "1/1"} for r in removed)
    limo = CurateConfig.model_validate(
        {
            **base,
            "difficulty": {"enabled": True, "references": [ref], "policy": "limo", "max_solved": 1, "candidates": 4},
        }
    )
    funnel = curate(limo, tmp_path / "limo")
    assert [f["count"] for f in funnel if f["stage"] == "difficulty"] == [4]
    kept = read_jsonl(tmp_path / "limo" / "selected.jsonl", Problem)
    assert all(p.metadata["curation"]["solved"] for p in kept)
    with pytest.raises(ConfigError, match="references"):
        curate(CurateConfig.model_validate({**base, "difficulty": {"enabled": True}}), tmp_path / "none")


def test_difficulty_policies_on_mixed_solve_rates(tiny_model, tmp_path):
    # Two references: the random-weight model, allowed two tokens, which can write no 5-digit
    # sum, and the program teacher, right wherever the reference answer is the true sum.
    # Three answers are made wrong, so the program teacher fails exactly those: mean solve
    # rates are 1/2 on the others and 0 on them.
    problems = load_pool("dyn:addition?digits=5&n=6&seed=3")
    wrong = {p.id for p in problems[::2]}
    problems = [p.model_copy(update={"answer": str(int(p.answer) + 1)}) if p.id in wrong else p for p in problems]
    right = {p.id for p in problems} - wrong
    pool = tmp_path / "pool.jsonl"
    write_jsonl(pool, problems)
    guesser, teacher = f"0-{tiny_model.name}", f"1-{tiny_model.name}"
    references = [
        {"model": str(tiny_model), "sampling": {"max_tokens": 2}},
        {"model": str(tiny_model), "engine": {"name": "program"}},
    ]
    off = {"enabled": False}

    def kept(**difficulty):
        # One output folder: each policy reruns the stage, and its eval runs resume with nothing to do.
        cfg = CurateConfig.model_validate(
            {
                "pools": [str(pool)],
                "target": 100,
                "normalise": off,
                "quality": off,
                "dedup": off,
                "decontaminate": off,
                "difficulty": {"enabled": True, "references": references, **difficulty},
            }
        )
        curate(cfg, tmp_path / "out")
        removed = [
            r
            for r in read_jsonl(tmp_path / "out" / "removed.jsonl", Removal, allow_empty=True)
            if r.stage == "difficulty"
        ]
        selected = read_jsonl(tmp_path / "out" / "selected.jsonl", Problem, allow_empty=True)
        evidence = {p.id: p.metadata["curation"]["solved"] for p in selected} | {
            r.id: r.evidence["solved"] for r in removed
        }
        assert evidence == {pid: {teacher: "0/1" if pid in wrong else "1/1", guesser: "0/1"} for pid in wrong | right}
        return {p.id for p in selected}

    assert kept(policy="s1") == wrong  # solved by nobody
    assert kept(policy="limo", max_solved=0) == wrong
    assert kept(policy="limo", max_solved=1) == wrong | right  # every reference solves each at most once
    assert kept(policy="band", band=(0.2, 0.8)) == right  # mean 1/2 inside, 0 outside
    assert kept(policy="band", band=(0.0, 0.6)) == right  # the ends are excluded: a mean of 0 is not above 0
    assert kept(policy="band", band=(0.5, 1.0)) == set()  # nor is 1/2 above 1/2
    assert kept(policy="band", band=(-0.1, 0.5)) == wrong
    removed = read_jsonl(tmp_path / "out" / "removed.jsonl", Removal)
    assert {r.reason for r in removed if r.id in right} == {"mean solve rate 0.50 outside (-0.1, 0.5)"}


@pytest.mark.parametrize(
    "rates, policy, max_solved, band, kept",
    [
        ({"a": (0, 4), "b": (0, 4)}, "s1", 0, (0.2, 0.8), True),
        ({"a": (0, 4), "b": (1, 4)}, "s1", 0, (0.2, 0.8), False),  # one solve by one reference is enough to drop
        ({"a": (2, 4), "b": (1, 4)}, "limo", 2, (0.2, 0.8), True),
        ({"a": (3, 4), "b": (0, 4)}, "limo", 2, (0.2, 0.8), False),  # every reference must stay within max_solved
        ({"a": (1, 4), "b": (3, 4)}, "band", 0, (0.2, 0.8), True),  # mean 0.5
        ({"a": (1, 4), "b": (0, 4)}, "band", 0, (0.2, 0.8), False),  # mean 0.125
        ({"a": (4, 4), "b": (3, 4)}, "band", 0, (0.2, 0.8), False),  # mean 0.875
        ({"a": (1, 5)}, "band", 0, (0.2, 0.8), False),  # exactly the low end
        ({"a": (1, 2), "b": (1, 4)}, "band", 0, (0.2, 0.8), True),  # rates averaged, not samples pooled: 0.375
    ],
)
def test_difficulty_verdicts(rates, policy, max_solved, band, kept):
    assert (verdict(rates, policy, max_solved, band) is None) is kept


@pytest.mark.parametrize(
    "question,rule,caught",
    [
        ("Find the area of the shaded region in the figure below.", "missing_figure", True),
        ("[asy] draw((0,0)--(1,1)); [/asy] Find the length.", "missing_figure", False),
        ("Find $x$ if\n+-----+\n|     |\n+-----+", "ascii_art", True),
        ("Prove:\n(1) first claim\n(3) third claim", "broken_numbering", True),
        ("Prove:\n(1) first claim\n(2) second claim", "broken_numbering", False),
        ("Let $x = 3 and find the", "truncated", True),
        ("Let $f(x)=\\left\\{ x \\right.$ for all x. Find f(2).", "truncated", False),
        ("Compute $\\sqrt{(31)(30)(29)(28)+1}$.", "too_short", False),
        ("Why?", "too_short", True),
        (
            "Найдите все натуральные числа n, для которых число n в квадрате плюс один делится на n плюс один.",
            "not_english",
            True,
        ),
    ],
)
def test_quality_rules(question, rule, caught):
    verdict = getattr(rules, rule)(Problem(id="q", source="t", question=question, answer="1"))
    assert bool(verdict) is caught, verdict


def test_extra_rules_and_unknown_rules(tmp_path):
    problems = [
        Problem(
            id=str(i),
            source="t",
            question=f"Proof problem {i}: show that {i} + {i} = {2 * i} holds.",
            answer=str(2 * i),
        )
        for i in range(5)
    ]
    _, removed = run_pool(
        tmp_path,
        problems,
        quality={"extra": {"proofs": r"\bshow that\b"}},
        dedup={"enabled": False},
        decontaminate={"enabled": False},
    )
    assert {r.evidence["rule"] for r in removed if r.stage == "quality"} == {"proofs"}
    with pytest.raises(ConfigError, match="unknown rule"):
        curate(CurateConfig(pools=["aime"], quality={"rules": ["nope"]}), tmp_path / "x")


def test_pools_load_with_answers_and_labels():
    for name, count in [("math-train", 7500), ("aime", 975), ("omni-math", 2821), ("gsm8k-train", 7473)]:
        problems = load_pool(name)
        assert len(problems) == count and len({p.id for p in problems}) == count
    assert {p.domain for p in load_pool("math-train")} >= {"Algebra", "Geometry", "Number Theory"}
    assert load_pool("aime")[0].answer == "60"


def test_cli_curate_prints_the_funnel_and_refuses_bad_input(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "handful",
            "curate",
            "--pool",
            "aime",
            "--target",
            "20",
            "--out",
            str(tmp_path / "o"),
            "--set",
            "decontaminate.benchmarks=[math500]",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "decontaminate" in done.stdout and "math500" in done.stdout
    shown = re.findall(r"^(\w+): (\d+) -> (\d+)$", done.stdout, re.MULTILINE)
    assert [name for name, _, _ in shown] == ["normalise", "quality", "dedup", "decontaminate", "select"]
    assert shown[-1][2] == "20" and " -> " not in done.stderr  # each stage once, on stdout
    funnel = json.loads((tmp_path / "o" / "funnel.json").read_text())
    assert [f["stage"] for f in funnel] == [
        "pool",
        "normalise",
        "quality",
        "dedup",
        "decontaminate",
        "difficulty",
        "select",
    ]
    assert funnel[-1]["count"] == 20
    twice = subprocess.run(
        [sys.executable, "-m", "handful", "curate", "--pool", "aime", "--pool", "aime", "--out", str(tmp_path / "t")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert twice.returncode == 1 and "is in both" in twice.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "handful", "curate", "--pool", "aim", "--out", str(tmp_path / "b")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "unknown pool 'aim'" in bad.stderr


def test_duplicate_ids_across_pools_are_refused(tmp_path):
    write_jsonl(
        tmp_path / "a.jsonl", [Problem(id="1", source="a", question="What is one plus one, exactly?", answer="2")]
    )
    with pytest.raises(RecordError, match="is in both"):
        curate(CurateConfig(pools=[str(tmp_path / "a.jsonl")] * 2), tmp_path / "o")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("ab Z09$\\{}.,+-^_\n\té∑ñ中\u00a0")), max_size=40), min_size=1, max_size=6
    )
)
def test_the_byte_tokenizer_finds_the_regex_tokens(texts):
    # Equal tokens hash equally and every document has the regex's token count; the only
    # difference allowed is Unicode whitespace, which the regex skips and bytes do not.
    from handful.curation.text import token_hashes, tokens

    texts = [t.replace("\u00a0", " ") for t in texts]
    hashes, docs = token_hashes(texts)
    expected = [w for t in texts for w in tokens(t)]
    assert [int(c) for c in np.bincount(docs, minlength=len(texts))] == [len(tokens(t)) for t in texts]
    seen = {}
    for word, h in zip(expected, hashes.tolist()):
        assert seen.setdefault(word, h) == h
    assert len(set(seen.values())) == len(seen)
