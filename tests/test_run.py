import hashlib
import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from servers import default_sigint
from typer.testing import CliRunner

from handful import manifest, report
from handful.cli import app
from handful.errors import ConfigError
from handful.recipe import RUN_RECIPES, load_recipe
from handful.records import Generation, read_jsonl, write_jsonl
from handful.run import describe, run_recipe

SECRET = "sk-test-0123456789abcdef"


def tiny_recipe(model: Path, **changes) -> dict:
    recipe = {
        "name": "tiny",
        "description": "the whole recipe with a tiny model",
        "model": str(model),
        "curate": {
            "pools": ["dyn:addition?digits=2&n=24&seed=1", "dyn:remainder?digits=2&n=24&seed=2"],
            "target": 12,
            "dedup": {"near": False},
            "decontaminate": {"benchmarks": ["math500"]},
            "difficulty": {
                "enabled": True,
                "policy": "s1",
                "references": [{"model": "@base", "sampling": {"max_tokens": 8}}],
            },
            "select": {"method": "stratified"},
        },
        "distill": {"teacher": {"model": "@base", "engine": {"name": "program"}}},
        "train": {
            "preset": "sft-cpu-small",
            "settings": {"max_steps": 3, "batch_size": 4, "save_steps": 2, "logging_steps": 1, "report_to": ["none"]},
        },
        "eval": {
            "purpose": "fresh procedural problems of the trained skills, the same for every model",
            "runs": {
                "plain": {
                    "benchmarks": ["dyn:addition?digits=2&n=4", "dyn:remainder?digits=2&n=4"],
                    "sampling": {"max_tokens": 8},
                },
                "budget": {
                    "benchmarks": ["dyn:addition?digits=2&n=4"],
                    "sampling": {"max_tokens": 8},
                    "budget": {"max_thinking_tokens": 4},
                },
            },
        },
    }
    for key, value in changes.items():
        recipe[key] = value
    return recipe


def run(recipe: dict, out: Path, events: list | None = None) -> dict:
    from handful.config import load_config
    from handful.recipe import RunRecipe

    text = yaml.safe_dump(recipe, sort_keys=False)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(text)
    return run_recipe(
        load_config(RunRecipe, path),
        text,
        out,
        on_stage=(lambda s, what: events.append((s.name, what))) if events is not None else None,
    )


def _git_dirty() -> bool:
    return bool(manifest.source_revision().get("git_dirty"))


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):
    os.environ["HANDFUL_TEST_API_KEY"] = SECRET
    out = tmp_path_factory.mktemp("run") / "tiny"
    study = {
        "eval": {"benchmarks": ["dyn:addition?digits=2&n=4"], "sampling": {"max_tokens": 8}},
        "sizes": [2, 4, 100],  # 100: more than the run curates, so the whole set, which the train stage trained on
        "random": [2],
    }
    recipe = tiny_recipe(tiny_model, description=f"pasted by mistake: {SECRET}", study=study)
    result = run(recipe, out)
    yield out, recipe, result
    shutil.rmtree(out.parent, ignore_errors=True)  # checkpoints: hundreds of MB the rest of the suite needs


def test_every_stage_runs_in_one_directory_and_is_recorded(finished):
    out, _, _ = finished
    state = json.loads((out / "stages.json").read_text())
    names = [
        "curate",
        "distill",
        "train",
        "eval/plain/base",
        "eval/plain/trained",
        "eval/budget/base",
        "eval/budget/trained",
        "study",
    ]
    assert list(state["stages"]) == names and all(s["status"] == "done" for s in state["stages"].values())
    study = json.loads((out / "study" / "study.json").read_text())["points"]
    whole = max(p["size"] for p in study)
    trained = json.loads((out / "train" / "train.json").read_text())
    assert whole == trained["train_samples"] + trained["validation_samples"]
    assert not (out / "study" / "points" / f"curated-{whole}" / "train").exists()  # the train stage's model, reused
    assert {p["steps"] for p in study if p["point"] == f"curated-{whole}"} == {trained["steps"]}
    for rel in (
        "curate/selected.jsonl",
        "curate/funnel.json",
        "distill/traces.jsonl",
        "distill/sft.jsonl",
        "train/model/model.safetensors",
        "eval/plain/trained/scores.json",
        "REPRODUCE.md",
        "report.html",
        "transparency.json",
        "configs/train.yaml",
    ):
        assert (out / rel).exists(), rel
    # before and after see the very same fresh problems, drawn once for the run
    seeds = json.loads((out / "seeds.json").read_text())
    assert set(seeds) == {"dyn:addition?digits=2&n=4", "dyn:remainder?digits=2&n=4"}
    ids = [
        {g.problem_id for g in read_jsonl(out / "eval" / "plain" / m / "samples.jsonl", Generation)}
        for m in ("base", "trained")
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 8


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_manifest_holds_versions_machine_models_prompts_and_hashes(finished, tiny_model):
    out, _, _ = finished
    m = json.loads((out / "manifest.json").read_text())
    assert m["handful"]["handful"] and m["packages"]["torch"] and m["packages"]["trl"]
    assert m["machine"]["logical_cpus"] >= 1 and m["machine"]["memory_gib"] > 0
    base = m["models"]["base"]
    assert (
        base["architecture"]["num_hidden_layers"] == 2
        and base["parameters"] > 0
        and base["weights"]["model.safetensors"]
    )
    trained = m["models"]["trained"]
    assert base["weights"]["model.safetensors"] == sha256(tiny_model / "model.safetensors")
    assert trained["weights"]["model.safetensors"] == sha256(out / "train" / "model" / "model.safetensors")
    stored = json.loads((out / base["prompt_format"]["file"]).read_text())
    assert "<|im_start|>" in stored["chat_template"] and stored["example_prompt"].endswith("<|im_start|>assistant\n")
    # Every file the manifest lists, hashed here from its bytes (report.html and the like are
    # rewritten after the manifest and are not in it).
    assert {"curate/selected.jsonl", "distill/sft.jsonl", "eval/plain/trained/samples.jsonl"} <= set(m["files"])
    for rel, entry in m["files"].items():
        assert (entry["sha256"], entry["bytes"]) == (sha256(out / rel), (out / rel).stat().st_size), rel
    assert not any(rel.startswith(("train/checkpoints", "superseded")) for rel in m["files"])
    assert [s["name"] for s in m["stages"]][:3] == ["curate", "distill", "train"]
    assert all(s["seconds_spent"] >= 0 and s["command"] for s in m["stages"])
    assert m["seeds"]["procedural_benchmarks"] and m["data"]["pools"]["dyn:addition?digits=2&n=24&seed=1"]["license"]


def test_no_secret_reaches_any_file(finished):
    out, _, _ = finished
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".yaml", ".md", ".html"):
            assert SECRET not in path.read_text(errors="replace"), path
    assert "HANDFUL_TEST_API_KEY" in (out / "manifest.json").read_text()  # says what was removed


def test_the_run_scores_itself_on_the_checklist(finished):
    _, _, result = finished
    score = result["transparency"]
    assert sum(i["points"] for i in score["items"]) == 100 and len(score["items"]) == 25
    missing = {i["check"] for i in score["items"] if i["status"] == "missing"}
    # The code that ran is a published revision only from a clean checkout (CI's fresh clone).
    assert missing == ({"training_code", "evaluation_code"} if _git_dirty() else set()), [
        i for i in score["items"] if i["status"] == "missing"
    ]
    assert score["total"] == 100 - (8 if _git_dirty() else 0)
    rl = next(i for i in score["items"] if i["check"] == "rl")
    assert rl["status"] == "not applicable" and "no RL" in rl["evidence"]


def test_a_rerun_skips_what_is_done_and_a_changed_stage_runs_again(finished, tmp_path):
    out, recipe, _ = finished
    copy = tmp_path / "tiny"
    shutil.copytree(out, copy)
    events: list = []
    run(recipe, copy, events)
    assert all(what == "unchanged, skipped" for _, what in events) and len(events) == 8
    changed = json.loads(json.dumps(recipe))
    changed["eval"]["runs"]["budget"]["budget"]["max_thinking_tokens"] = 6
    events.clear()
    run(changed, copy, events)
    ran = [name for name, what in events if what in ("running",)]
    assert ran == ["eval/budget/base", "eval/budget/trained"]
    assert (copy / "superseded").exists() and any(
        p.name.startswith("eval-budget-base-") for p in (copy / "superseded").iterdir()
    )
    assert len(json.loads((copy / "stages.json").read_text())["invocations"]) == 3


def test_transparency_names_what_a_thin_run_lacks(tiny_model, tmp_path):
    recipe = {
        "name": "thin",
        "model": str(tiny_model),
        "eval": {
            "purpose": "because",
            "models": ["@base"],
            "runs": {"only": {"benchmarks": ["dyn:addition?digits=1&n=3&seed=5"], "sampling": {"max_tokens": 4}}},
        },
    }
    score = run(recipe, tmp_path / "thin")["transparency"]
    by_check = {i["check"]: i for i in score["items"]}
    # One model, no training and no budget: nothing was varied, so there is nothing to ablate.
    assert by_check["ablations"]["status"] == "not applicable" and "no component" in by_check["ablations"]["evidence"]
    assert by_check["benchmark_choice"]["status"] == "missing"
    assert by_check["weights"]["status"] == "not applicable"
    assert score["total"] < 100


@pytest.mark.parametrize(
    "name,accelerate,numbers",
    [
        ("s1k-qwen2.5-32b", "fsdp", {"lr": 1e-5, "epochs": 5.0}),
        ("limo-qwen2.5-32b", "deepspeed-zero3", {"lr": 5e-6, "epochs": 15.0}),
        ("deepscaler-1.5b", "ddp", {"lr": 1e-6, "beta": 0.001}),
    ],
)
def test_gpu_recipes_resolve_in_a_dry_run(name, accelerate, numbers, tmp_path):
    recipe, _ = load_recipe(name)
    stages = {s["stage"]: s for s in describe(recipe, tmp_path)}
    train = stages["train"]
    assert all(train["config"][k] == v for k, v in numbers.items()), train["config"]
    assert f"{accelerate}.yaml" in " ".join(train["command"]) and train["command"][-4:] == [
        "--config",
        str(tmp_path / "configs" / "train.yaml"),
        "--out",
        str(tmp_path / "train"),
    ]
    assert stages["eval/" + next(iter(recipe.eval.runs)) + "/trained"]["config"]["model"].startswith(
        str(tmp_path / "train")
    )
    assert not tmp_path.joinpath("stages.json").exists()  # a dry run writes nothing


def test_every_shipped_recipe_loads_and_the_demo_has_all_stages():
    names = sorted(p.stem for p in RUN_RECIPES.glob("*.yaml"))
    assert names == ["deepscaler-1.5b", "demo-cpu", "demo-cpu-full", "limo-qwen2.5-32b", "s1k-qwen2.5-32b"]
    demo, _ = load_recipe("demo-cpu")
    assert (
        demo.curate.difficulty.enabled
        and demo.distill.teacher.engine.name == "program"
        and demo.train.preset == "sft-cpu-small"
    )
    assert set(demo.eval.models) == {"@base", "@train"} and set(demo.scale.models) == {"@base", "@train"}
    assert any("probes" in b for cfg in demo.eval.runs.values() for b in cfg.benchmarks)
    # The showcase: at least two skills of at least 3 digits, learnt from at most 500 curated examples.
    plain = [parse_qs(urlparse(b).query) for b in demo.eval.runs["plain"].benchmarks]
    assert len(plain) >= 2 and all(int(q["digits"][0]) >= 3 for q in plain) and demo.curate.target <= 500
    full, text = load_recipe("demo-cpu-full")
    assert full.name == "demo-cpu-full" and full.eval == demo.eval and full.train == demo.train  # extended
    assert len(full.study.sizes) >= 3 and full.study.random and full.precision is not None
    assert "\nextends:" not in text and "study:" in text and "curate:" in text  # stored whole


def test_a_recipe_reading_a_stage_it_does_not_run_is_refused(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="stage train reads from distill"):
        run({"name": "broken", "model": str(tiny_model), "train": {"preset": "sft-cpu-small"}}, tmp_path / "broken")


def test_cli_dry_run_transparency_and_report(finished, tmp_path):
    out, _, _ = finished
    runner = CliRunner()
    dry = runner.invoke(app, ["run", "demo-cpu", "--dry-run", "--out", str(tmp_path / "d")])
    assert dry.exit_code == 0 and "handful train sft --config" in dry.output and "fresh seeds are drawn" in dry.output
    scored = runner.invoke(app, ["transparency", str(out), "--json"])
    assert scored.exit_code == 0 and json.loads(scored.output)["total"] >= 92
    written = runner.invoke(app, ["report", str(out)])
    assert written.exit_code == 0 and "report.html" in written.output
    assert "Paired by problem" in (out / "report.html").read_text()  # the before/after section
    paired = runner.invoke(
        app, ["compare", str(out / "eval" / "plain" / "base"), str(out / "eval" / "plain" / "trained")]
    )
    assert paired.exit_code == 0 and "paired," in paired.output and "p = " in paired.output
    bad = runner.invoke(app, ["transparency", str(tmp_path)])
    assert bad.exit_code == 1 and "manifest.json" in bad.output


def test_regrade_a_whole_run_keeps_its_manifest_and_report(finished, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished[0], out, ignore=shutil.ignore_patterns(".handful.lock*"))
    result = CliRunner().invoke(app, ["regrade", str(out)])
    assert result.exit_code == 0, result.output
    # Four eval stages and the study's five points, graded by this very grader.
    assert result.output.count("verdicts changed: none") == 4 + 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert all("scores" in s for s in manifest["stages"] if s["kind"] == "eval")
    assert (out / "report.html").exists() and json.loads((out / "transparency.json").read_text())["total"] >= 92


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def hostile_report(finished, tmp_path_factory):
    """The finished run with one trace that tries to run script in the page."""
    out = tmp_path_factory.mktemp("hostile") / "tiny"
    # The page reads no weights, so the copy leaves them out.
    shutil.copytree(finished[0], out, ignore=shutil.ignore_patterns("*.safetensors", "*.pt", "*.bin"))
    path = out / "eval" / "plain" / "trained" / "samples.jsonl"
    samples = read_jsonl(path, Generation)
    samples[0] = samples[0].model_copy(
        update={"text": HOSTILE, "thinking": HOSTILE, "answer_text": "</script>" + HOSTILE, "correct": False}
    )
    write_jsonl(path, samples)
    report.write(out)
    yield out / "report.html"
    shutil.rmtree(out.parent, ignore_errors=True)


def test_model_text_is_escaped_in_the_page_source(hostile_report):
    page = hostile_report.read_text()
    assert (
        HOSTILE not in page and "<img src=x" not in page and page.count("<script") == 2
    )  # the data block and the page's own script


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


# In every chart, as the browser drew it: x tick labels that touch, and legend entries or bar
# labels that leave the chart or cover one another.
TEXT_PROBLEMS = """() => {
  const problems = [];
  const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  document.querySelectorAll("svg.chart").forEach((svg, i) => {
    const view = svg.viewBox.baseVal;
    const name = i + " " + svg.querySelector("title").textContent;
    for (const cls of ["tick-x", "legend", "bar-label"]) {
      const boxes = Array.from(svg.querySelectorAll("text." + cls)).map(t => [t.textContent, t.getBBox()]);
      boxes.forEach(([text, b], j) => {
        if (b.x < 0 || b.y < 0 || b.x + b.width > view.width || b.y + b.height > view.height)
          problems.push(name + ": " + cls + " '" + text + "' is cut off by the chart's edge");
        boxes.slice(j + 1).forEach(([other, c]) => {
          if (overlap(b, c)) problems.push(name + ": " + cls + " '" + text + "' covers '" + other + "'");
        });
      });
    }
  });
  return problems;
}"""


def test_report_in_a_real_browser(hostile_report):
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    if executable is None:
        if os.environ.get("HANDFUL_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH, and HANDFUL_REQUIRE_BROWSER is set")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.route(
            "**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_()
        )  # offline
        page.goto(hostile_report.as_uri())
        assert problems == []
        charts = page.locator("svg.chart")
        assert charts.count() >= 4
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100
        assert page.locator("svg.chart rect.bar").count() > 0 and page.locator("svg.chart circle.point").count() > 0
        assert page.evaluate(TEXT_PROBLEMS) == []
        count = page.get_by_test_id("count")
        total = int(count.inner_text().split()[0])
        assert total == 8 * 2 + 4 * 2 and page.get_by_test_id("sample").count() == 20  # one page
        page.get_by_test_id("next").click()
        assert (
            page.get_by_test_id("sample").count() == total - 20
            and "page 2 of 2" in page.get_by_test_id("page").inner_text()
        )
        page.get_by_test_id("previous").click()
        page.get_by_test_id("filter-verdict").select_option("incorrect")
        wrong = int(count.inner_text().split()[0])
        assert 1 <= wrong <= total and all("incorrect" in t for t in page.get_by_test_id("sample").all_inner_texts())
        page.get_by_test_id("filter-verdict").select_option("")
        page.get_by_test_id("filter-run").select_option("eval/budget/base")
        assert int(count.inner_text().split()[0]) == 4
        page.get_by_test_id("filter-run").select_option("")
        page.get_by_test_id("search").fill("__pwned")
        assert int(count.inner_text().split()[0]) == 1
        card = page.get_by_test_id("sample").first
        assert "<script>window.__pwned = 1</script>" in card.inner_text()  # shown as text
        assert not card.locator("details.thinking").get_attribute("open") is not None  # folded
        assert page.evaluate("window.__pwned") is None and page.locator("main img").count() == 0
        page.screenshot(path=str(hostile_report.parent / "report.png"), full_page=False)
        browser.close()


def resume_recipe(model: Path) -> dict:
    """A cheap stage (the program teacher) and then one eval stage with enough samples, one at a
    time, that a signal lands while work remains: all that resuming a run needs, in seconds."""
    plain = {
        "benchmarks": ["dyn:addition?digits=2&n=30", "dyn:remainder?digits=2&n=30"],
        "sampling": {"max_tokens": 8},
        "engine": {"batch_size": 1},
    }
    return {
        "name": "resume",
        "model": str(model),
        "distill": {
            "problems": "dyn:addition?digits=2&n=4&seed=1",
            "teacher": {"model": "@base", "engine": {"name": "program"}},
        },
        "eval": {
            "purpose": "fresh procedural problems, drawn once for the run",
            "models": ["@base"],
            "runs": {"plain": plain},
        },
    }


def test_ctrl_c_then_rerun_resumes_where_it_stopped(tiny_model, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(resume_recipe(tiny_model), sort_keys=False))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "handful", "run", str(path), "--out", str(out)]
    first = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,  # noqa: PLW1509 (the child only resets one signal handler before exec)
    )
    samples = out / "eval" / "plain" / "base" / "samples.jsonl"
    deadline = time.monotonic() + 300
    while (
        not (samples.exists() and samples.read_text().count("\n") >= 2)
        and time.monotonic() < deadline
        and first.poll() is None
    ):
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 130, output
    state = json.loads((out / "stages.json").read_text())["stages"]
    assert state["distill"]["status"] == "done" and state["eval/plain/base"]["status"] == "started"
    kept = samples.read_text().splitlines()
    assert 2 <= len(kept) < 60
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "distill: unchanged, skipped" in second.stdout
    assert "eval/plain/base: resuming" in second.stdout
    state = json.loads((out / "stages.json").read_text())["stages"]
    assert all(s["status"] == "done" for s in state.values())
    # The kept samples were not made again: raw lines, so that a duplicate would show.
    lines = samples.read_text().splitlines()
    keys = [Generation.model_validate_json(line).key for line in lines]
    assert len(lines) == len(set(keys)) == 60 and lines[: len(kept)] == kept


def test_bad_recipes_name_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="run recipe 'no-such'.*shipped: deepscaler-1.5b, demo-cpu"):
        load_recipe("no-such")
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "bad", "eval": {"purpose": "p", "models": ["@nope"], "runs": {"r": {"benchmarks": ["gsm8k"]}}}}
        )
    )
    recipe, _ = load_recipe(path)
    with pytest.raises(ConfigError, match="@nope: no such placeholder here; known: @base, @curate, @distill"):
        describe(recipe, tmp_path / "out")
    path.write_text(yaml.safe_dump({"name": "bad", "train": {"kind": "ppo"}}))
    with pytest.raises(ConfigError, match=r"bad.yaml: train.kind: Input should be 'sft' or 'grpo'"):
        load_recipe(path)


def test_a_recipe_extends_another_and_a_circle_is_refused(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: demo-cpu\nname: child\ntrain: {settings: {epochs: 2}}\n")
    recipe, text = load_recipe(child)
    demo, _ = load_recipe("demo-cpu")
    assert recipe.name == "child" and recipe.train.settings["epochs"] == 2 and recipe.train.preset == demo.train.preset
    assert recipe.curate == demo.curate and "\nextends:" not in text
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\nname: a\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\nname: b\n")
    with pytest.raises(ConfigError, match="extends it back"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: no-such-recipe\nname: c\n")
    with pytest.raises(ConfigError, match="no-such-recipe"):
        load_recipe(tmp_path / "c.yaml")
