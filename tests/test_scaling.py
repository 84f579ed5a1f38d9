import json

import pytest

from handful.config import load_config
from handful.errors import ConfigError
from handful.records import Generation, read_jsonl
from handful.scaling import ScaleConfig, points, scale, slope


def test_slope_is_mean_gain_per_doubling():
    curve = [
        {"avg_thinking_tokens": 100, "accuracy": 0.2},
        {"avg_thinking_tokens": 200, "accuracy": 0.3},  # +0.1 over one doubling
        {"avg_thinking_tokens": 800, "accuracy": 0.5},  # +0.2 over two doublings: +0.1 each
    ]
    assert slope(curve) == pytest.approx(0.1)
    assert slope(curve[:1]) is None


def test_points_skip_impossible_budgets():
    cfg = ScaleConfig(max_thinking=[16, 64], min_thinking=[0, 32], waits=[0, 2])
    names = [name for name, _ in points(cfg)]
    assert "max16_min32_waits0" not in names and len(names) == 6
    with pytest.raises(ConfigError, match="min_thinking <= max_thinking"):
        points(ScaleConfig(max_thinking=[8], min_thinking=[16]))


def test_votes_need_sampling():
    with pytest.raises(ConfigError, match="votes > 1 needs sampling"):
        load_config(ScaleConfig, overrides=["votes=[1,4]"])


def test_sweep_writes_the_curve_and_resumes(tiny_model, tmp_path):
    cfg = ScaleConfig(
        eval={
            "model": str(tiny_model),
            "benchmarks": ["gsm8k"],
            "limit": 2,
            "sampling": {"max_tokens": 40, "temperature": 0.8},
        },
        max_thinking=[8, 16],
        votes=[1, 2],
    )
    result = scale(cfg, tmp_path)
    assert [p["point"] for p in result["points"]] == ["max8_min0_waits0", "max16_min0_waits0"]
    for p in result["points"]:
        assert (
            p["control"] == 1.0
            and p["avg_thinking_tokens"] <= p["max_thinking_tokens"]
            and set(p["maj@k"]) == {"1", "2"}
        )
    on_disk = json.loads((tmp_path / "curve.json").read_text())
    assert on_disk["summary"]["gsm8k"]["control"] == 1.0
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    before = (tmp_path / "points/max8_min0_waits0/samples.jsonl").read_text()
    scale(cfg, tmp_path)  # everything is done: nothing is generated again
    assert (tmp_path / "points/max8_min0_waits0/samples.jsonl").read_text() == before
    assert len(read_jsonl(tmp_path / "points/max16_min0_waits0/samples.jsonl", Generation)) == 4


@pytest.mark.slow
def test_scale_cli_on_the_real_model(smollm2_path, tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "handful",
            "scale",
            "--model",
            "smollm2-135m",
            "--benchmark",
            "gsm8k",
            "--limit",
            "3",
            "--max-thinking",
            "16,32",
            "--max-tokens",
            "64",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr
    assert "scaling slope" in out.stdout and (tmp_path / "curve.png").exists()
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [round(p["avg_thinking_tokens"]) <= p["max_thinking_tokens"] for p in curve["points"]] == [True, True]


def _sample(pid: str, i: int, answer: str, correct: bool, tokens: int) -> Generation:
    return Generation(
        problem_id=pid,
        benchmark="b",
        sample_index=i,
        model="m",
        text=answer,
        canonical=answer,
        correct=correct,
        completion_tokens=tokens,
    )


def test_sequential_is_paired_with_the_vote_of_matching_tokens():
    from handful.scaling import matched

    n = 4
    # The smallest budget: 10 tokens a sample; problem p1's vote is right (3 of 4), p2's wrong.
    small = [_sample("p1", i, "1" if i < 3 else "9", i < 3, 10) for i in range(n)]
    small += [_sample("p2", i, "7" if i < 3 else "2", i == 3, 10) for i in range(n)]
    # A larger budget at 40 tokens a sample: 4 x 10, so the vote of 4 is its match.
    large = [_sample(p, i, "x", p == "p2", 40) for p in ("p1", "p2") for i in range(n)]
    curve = [
        {"point": "small", "benchmark": "b", "avg_tokens": 10.0},
        {"point": "large", "benchmark": "b", "avg_tokens": 40.0},
    ]
    (found,) = matched(curve, {"small": small, "large": large}, n)
    assert found["parallel"] == "maj@4 at small" and found["parallel_tokens"] == 40.0
    c = found["comparison"]
    # Parallel: p1 right, p2 wrong (0.5); sequential: p1 0/4, p2 4/4 (0.5); they swap on both problems.
    assert c["baseline_accuracy"] == 0.5 and c["accuracy"] == 0.5 and c["better"] == 1 and c["worse"] == 1
