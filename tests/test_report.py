"""report.html escapes every name a run carries, not only model text: run names, descriptions,
eval run names, model labels, benchmark names, curation stages and domains, scaling points and
transparency evidence. The page is parsed, so a payload that became markup is seen as markup."""

import json
from html.parser import HTMLParser
from pathlib import Path

import yaml

from handful import report
from handful.records import Generation, Problem, write_jsonl

# No "/" in the names that become folders (eval run names, model labels, scaling labels).
RUN = "<script>alert(1)</script>"
DESCRIPTION = '</textarea><script>alert(2)</script>"onload="alert(3)'
EVAL_RUN = "<img src=x onerror=alert(4)>"
MODEL = '"><svg onload=alert(5)>'
BENCHMARK = "</title><script>alert(6)</script>"
QUOTED = "' onmouseover='alert(7)"
PAYLOADS = [RUN, DESCRIPTION, EVAL_RUN, MODEL, BENCHMARK, QUOTED]
# What would start markup if written raw. Quotes are harmless in text, and no name reaches an
# attribute; the parse below would see an event handler if one did.
FRAGMENTS = ["<script>alert", "</textarea>", "<img src=x", "<svg onload", "</title><script>"]


class Page(HTMLParser):
    """Every element with its attributes, the text inside each, and the scripts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements, self.texts, self.scripts, self._open = [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_data(self, data):
        tag = self._open[-1] if self._open else None
        if tag == "script":
            self.scripts.append((self.elements[-1][1] if self.elements[-1][0] == "script" else {}, data))
        else:
            self.texts.append((tag, data))

    def text(self) -> str:
        return "\n".join(data for _, data in self.texts)


def hostile_run(out: Path, funnel: bool = False) -> Path:
    """A finished run, written by hand, whose every name is a payload."""
    stages, config = [], {"sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8, "seed": 0}, "budget": {}}
    for model, correct in (("base", False), (MODEL, True)):
        name = f"eval/{EVAL_RUN}/{model}"
        samples = [
            Generation(
                problem_id=f"p{i}",
                benchmark=BENCHMARK,
                model=model,
                text=QUOTED,
                thinking=RUN,
                answer_text=QUOTED,
                correct=correct,
            )
            for i in range(2)
        ]
        write_jsonl(out / name / "samples.jsonl", samples)
        scores = {
            "n_problems": 2, "n_samples": 2, "accuracy": float(correct), "ci95": [0.0, 1.0], "maj@k": {"1": 0.5},
            "pass@k": {"1": 0.5}, "maj@k_ci95": {"1": [0.0, 1.0]}, "avg_thinking_tokens": 4.0,
            "avg_answer_tokens": 2.0, "outcomes": {QUOTED: 2},
        }  # fmt: skip
        cfg = {**config, "model": MODEL, "benchmarks": [BENCHMARK], "n": 1}
        stages.append({"name": name, "kind": "eval", "status": "done", "config": cfg, "scores": {BENCHMARK: scores}})
    stages.append(
        {"name": "curate", "kind": "curate", "status": QUOTED, "command": ["handful", EVAL_RUN], "config": None}
    )
    if funnel:
        (out / "curate").mkdir()
        (out / "curate" / "funnel.json").write_text(json.dumps([{"stage": RUN, "count": 3, "by_reason": {MODEL: 1}}]))
        domain = {"curation": {"domain": DESCRIPTION}}
        problem = Problem(id="q", source="s", question="?", answer="1", metadata=domain)
        write_jsonl(out / "curate" / "selected.jsonl", [problem])
    point = {"point": QUOTED, "benchmark": BENCHMARK, "avg_thinking_tokens": 8.0, "accuracy": 0.5, "ci95": [0.0, 1.0]}
    (out / "scale" / MODEL).mkdir(parents=True)
    (out / "scale" / MODEL / "curve.json").write_text(
        json.dumps({"points": [{**point, "maj@k": {"1": 0.5}, "control": 1.0}]})
    )
    # The transparency section is scored from this manifest: its evidence quotes the names above.
    manifest = {
        "run": RUN, "description": DESCRIPTION, "handful": {"handful": "0.1.0"}, "stages": stages,
        "machine": {"cpu": MODEL, "logical_cpus": 2, "memory_gib": 4.0, "gpus": [QUOTED]},
        "recipe": {"settings": {"eval": {"runs": {EVAL_RUN: {}}, "models": ["@base", MODEL]}}},
        "data": {"pools": {RUN: {"source": QUOTED, "license": MODEL}}, "benchmarks": {}},
        "evaluation": {"level": QUOTED, "purpose": DESCRIPTION, "metrics": {}},
        "models": {"base": {"name": MODEL}}, "release": {"paper": QUOTED}, "files": {},
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest))
    return report.write(out)


def check_escaped(path: Path) -> Page:
    text = path.read_text()
    page = Page(text)
    # Markup: only the page's own two scripts, no element a payload brings, no event handler.
    assert [attrs for attrs, _ in page.scripts] == [{"type": "application/json", "id": "samples-data"}, {}]
    assert page.scripts[1][1] == (report.ASSETS / "report.js").read_text()
    assert not {tag for tag, _ in page.elements} & {"img", "textarea", "iframe", "object", "embed"}
    assert not [(tag, a) for tag, attrs in page.elements for a in attrs if a.lower().startswith("on")]
    assert [tag for tag, _ in page.elements].count("svg") == sum(
        1 for _, attrs in page.elements if attrs.get("class") == "chart"
    )
    # The data block holds JSON, where only "</script" could end it; outside it no fragment is raw.
    data_block = page.scripts[0][1]
    outside = text.replace(data_block, "")
    assert [f for f in FRAGMENTS if f in outside] == []
    assert "<" not in data_block and ">" not in data_block
    return page


def test_every_name_in_the_page_stays_text(tmp_path):
    page = check_escaped(hostile_run(tmp_path))
    titles = [data for tag, data in page.texts if tag == "title"]
    assert titles[0] == f"{RUN}: handful report"
    assert (RUN, DESCRIPTION) == tuple(data for tag, data in page.texts if tag in ("h1", "p"))[:2]
    shown = page.text()
    for payload in PAYLOADS:
        assert payload in shown, payload  # shown as the text it is, not dropped
    cells = {data for tag, data in page.texts if tag == "td"}
    assert {f"eval/{EVAL_RUN}/{MODEL}", BENCHMARK, EVAL_RUN} <= cells
    assert any(DESCRIPTION in c for c in cells)  # quoted by the transparency evidence (eval.purpose)
    samples = json.loads(page.scripts[0][1])
    assert {(s["run"], s["benchmark"], s["answer"]) for s in samples} >= {
        (f"eval/{EVAL_RUN}/{MODEL}", BENCHMARK, QUOTED)
    }


def test_curation_stages_and_domains_stay_text(tmp_path):
    page = check_escaped(hostile_run(tmp_path, funnel=True))
    cells = {data for tag, data in page.texts if tag == "td"}
    assert {RUN, f"{MODEL} 1", DESCRIPTION} <= cells  # stage, main reason, domain


def test_a_real_run_with_hostile_names(tiny_model, tmp_path):
    """The same through `handful run`: the recipe's name and description, an eval run name and a
    benchmark name reach the page from the recipe, not from a hand-written manifest."""
    from handful.config import load_config
    from handful.recipe import RunRecipe
    from handful.run import run_recipe

    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"q": f"What is {i} + {i}?", "a": 2 * i}) + "\n" for i in range(2)))
    bench = f"jsonl:{questions}?question=q&answer=a&name={BENCHMARK.replace('/', '')}"
    recipe = {
        "name": RUN.replace("/", ""), "description": DESCRIPTION, "model": str(tiny_model),
        "eval": {
            "purpose": DESCRIPTION, "models": ["@base", str(tiny_model)],
            "runs": {EVAL_RUN: {"benchmarks": [bench], "sampling": {"max_tokens": 4}}},
        },
    }  # fmt: skip
    text = yaml.safe_dump(recipe, sort_keys=False)
    (tmp_path / "recipe.yaml").write_text(text)
    run_recipe(load_config(RunRecipe, tmp_path / "recipe.yaml"), text, tmp_path / "run")
    page = check_escaped(tmp_path / "run" / "report.html")
    shown = page.text()
    for payload in (RUN.replace("/", ""), DESCRIPTION, EVAL_RUN, BENCHMARK.replace("/", "")):
        assert payload in shown, payload
