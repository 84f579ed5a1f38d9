import pytest

from handful.errors import ScoringError
from handful.metrics import bootstrap_ci, majority_correct, pass_at_k, score
from handful.records import Generation


def g(pid, i, canonical, correct, thinking=0, answer=0):
    return Generation(
        problem_id=pid,
        sample_index=i,
        model="m",
        text="",
        canonical=canonical,
        correct=correct,
        outcome="correct" if correct else ("no_answer" if canonical is None else "incorrect"),
        thinking_tokens=thinking,
        answer_tokens=answer,
    )


def test_pass_at_k_matches_hand_values():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # C(3,2)/C(4,2)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert pass_at_k(4, 3, 2) == 1.0


def test_majority_vote_ties_go_to_first_and_no_answer_never_wins():
    assert majority_correct([g("p", 0, "5", True), g("p", 1, "6", False)])
    assert not majority_correct([g("p", 0, "6", False), g("p", 1, "5", True)])
    assert majority_correct([g("p", 0, None, False), g("p", 1, None, False), g("p", 2, "5", True)])
    assert not majority_correct([g("p", 0, None, False)])


def test_score_by_hand():
    samples = [
        # p1: 3 of 4 correct; majority "7" correct
        g("p1", 0, "7", True, 10, 2),
        g("p1", 1, "7", True, 20, 2),
        g("p1", 2, "8", False, 30, 2),
        g("p1", 3, "7", True, 40, 2),
        # p2: 1 of 4; first two disagree, tie -> "1" (wrong); maj@4: "2" x2 wrong vs "3" x1
        g("p2", 0, "1", False),
        g("p2", 1, "3", True),
        g("p2", 2, "2", False),
        g("p2", 3, "2", False),
    ]
    s = score(samples, n=4)
    assert s.n_problems == 2 and s.n_samples == 8
    assert s.accuracy == pytest.approx((0.75 + 0.25) / 2)
    assert s.pass_at_k["1"] == pytest.approx(0.5)
    assert s.pass_at_k["2"] == pytest.approx((1.0 + (1 - 3 / 6)) / 2)
    assert s.pass_at_k["4"] == pytest.approx(1.0)
    assert s.maj_at_k == {"1": 0.5, "2": 0.5, "4": 0.5}
    assert s.avg_thinking_tokens == pytest.approx(100 / 8)
    assert s.avg_answer_tokens == pytest.approx(1.0)
    assert s.outcomes == {"correct": 4, "incorrect": 4}
    lo, hi = s.ci95
    assert lo <= s.accuracy <= hi and 0.25 <= lo and hi <= 0.75
    dumped = s.model_dump(by_alias=True)
    assert "pass@k" in dumped and "maj@k" in dumped


def test_missing_samples_fail_loudly_and_name_problems():
    samples = [g("p1", 0, "1", True), g("p1", 1, "1", True), g("p2", 0, "1", True)]
    with pytest.raises(ScoringError, match=r"p2 \(1\)"):
        score(samples, n=2)
    with pytest.raises(ScoringError, match=r"p3 \(0\)"):
        score(samples[:2], n=2, expected=["p1", "p3"])


def test_ungraded_samples_are_refused():
    with pytest.raises(ScoringError, match="not graded"):
        score([Generation(problem_id="p", model="m", text="")], n=1)


def test_bootstrap_ci_is_degenerate_for_constant_and_wide_for_mixed():
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0)
    lo, hi = bootstrap_ci([0.0, 1.0] * 50)
    assert 0.35 < lo < 0.5 < hi < 0.65


def test_truncation_and_unclosed_thinking_are_counted_per_benchmark():
    samples = [
        g("a", 0, "1", True).model_copy(
            update={"finish_reason": "length", "thinking": "all of it", "thinking_tokens": 9}
        ),
        g("b", 0, "1", True).model_copy(
            update={"finish_reason": "length", "thinking": "t", "answer_text": "x", "answer_tokens": 2}
        ),
        g("c", 0, "1", True).model_copy(
            update={"thinking": "t", "answer_text": "", "answer_tokens": 3}
        ),  # closed, then nothing
        g("d", 0, "1", True),
    ]
    s = score(samples, 1)
    assert s.truncated == 0.5 and s.unclosed_thinking == 0.25
    assert set(s.model_dump()) >= {"truncated", "unclosed_thinking"}


def test_variance_parts_recover_the_spread_between_problems():
    import numpy as np

    from handful.metrics import variance_parts

    rng = np.random.default_rng(0)
    rates = np.where(np.arange(4000) % 2 == 0, 0.2, 0.8)  # true between-problem variance 0.09
    means = rng.binomial(8, rates) / 8
    parts = variance_parts(list(means), 8)
    assert parts["variance_between"] == pytest.approx(0.09, abs=0.006)
    assert parts["variance_within"] == pytest.approx(0.16 / 8, abs=0.002)  # p(1-p)/n = 0.16/8


def test_advice_says_what_would_narrow_the_interval():
    from handful.metrics import advice

    greedy = score([g(f"p{i}", 0, "1", i % 3 == 0) for i in range(30)], 1)
    text = advice(greedy)
    assert "120 problems would halve it" in text and "one sample per problem cannot tell" in text
    sampled = [g(f"p{i}", k, "1", (i % 3 == 0) or (k % 2 == 0)) for i in range(30) for k in range(4)]
    s = score(sampled, 4)
    text = advice(s)
    floor = float(text.split("goes below ±")[1].split(" ")[0])
    assert 0 < floor < (s.ci95[1] - s.ci95[0]) / 2

    def advice_for(rates, n=4):
        # Samples whose per-problem accuracies are exactly `rates`.
        samples = [g(f"p{i}", k, "1", k < round(r * n)) for i, r in enumerate(rates) for k in range(n)]
        return advice(score(samples, n))

    # Every problem alike, all the spread is noise within problems: 4x the samples halve it.
    assert "on these 40 problems, 16 samples each would halve it" in advice_for([0.5] * 40)
    # Problems solved always or never: only more problems help.
    assert "no number of samples per problem halves it" in advice_for([0.0, 1.0] * 20 + [0.75, 0.25])
