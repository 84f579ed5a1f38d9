"""Careless and hostile input, through the CLI as a user types it: every case ends in a clear
one-line error (no traceback) or in a correct result, and no finished record is lost,
duplicated or written outside --out.

Cases are grouped as docs/RELIABILITY.md lists the promises: containment, secrets, the
terminal, integrity (locking, fingerprints, duplicate ids, nothing written before the
settings are valid), model names for servers, messages instead of tracebacks, and hangs."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from handful.cli import app

RUNNER = CliRunner()
SHIPPED_RECIPES = Path(__file__).resolve().parents[1] / "src" / "handful" / "recipes" / "runs"


def cli(*args, env: dict | None = None):
    return RUNNER.invoke(app, [str(a) for a in args], env=env)


def refused(result, *needles: str, code: int = 1) -> str:
    """The command failed with a message (no traceback) that contains every needle."""
    text = result.output
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{text}\n{result.exception!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in text, text
    if code == 1:
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"expected one error line:\n{text}"
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    return text


def ok(result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    return result.output


def keys(samples: Path) -> list[str]:
    """The key of every whole line (a line cut by a kill or a full disk has no newline yet)."""
    whole = samples.read_text()[: samples.read_text().rfind("\n") + 1]
    rows = [json.loads(line) for line in whole.splitlines() if line.strip()]
    return [f"{r['benchmark']}/{r['problem_id']}#{r['sample_index']}" for r in rows]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class Server:
    """An OpenAI-compatible server on 127.0.0.1 whose every answer comes from `reply(path,
    headers, body)`: (status, payload), or None to never answer (until closed)."""

    def __init__(self, reply):
        stop = self.stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                answer = reply(self.path, dict(self.headers), body)
                if answer is None:
                    stop.wait(30)
                    return
                status, payload = answer
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def completion(text: str, body: dict) -> tuple[int, dict]:
    if "messages" in body:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return 200, {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [choice],
        }
    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return 200, {
        "id": "c",
        "object": "text_completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [choice],
    }


@pytest.fixture
def echo_server():
    """Answers \\boxed{4} and repeats the request's Authorization header: a server that leaks the key."""

    def reply(path, headers, body):
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        return completion(f"auth={auth} \\boxed{{4}}", body)

    s = Server(reply)
    yield s
    s.close()


def served_eval(out: Path, url: str, *extra) -> list:
    """`handful eval` of one fresh one-digit sum, asked of a server."""
    return ["eval", "--out", out, "--model", "smollm2-135m", "--engine", "openai", "--base-url", url,
            "--benchmark", "dyn:addition?digits=1&n=1&seed=1", "--max-tokens", "8", *extra]  # fmt: skip


def program_eval(out: Path, model: Path, *extra) -> list:
    return ["eval", "--out", out, "--model", model, "--engine", "program", *extra]


# ---- containment: names never become paths outside --out ------------------------------


def _recipe(tmp_path: Path, model: Path, **changes) -> Path:
    recipe = {
        "name": "probe",
        "model": str(model),
        "eval": {
            "purpose": "bad-input probe",
            "models": ["@base"],
            "runs": {"plain": {"benchmarks": ["dyn:addition?digits=2&n=2&seed=1"], "engine": {"name": "program"}}},
        },
    }
    for dotted, value in changes.items():
        node = recipe
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("run_name", ["../../../victim", "..", "a/b", "x\x1b[2J"])
def test_an_eval_run_name_that_is_not_one_folder_is_refused(tiny_model, tmp_path, run_name):
    recipe = _recipe(tmp_path, tiny_model)
    data = yaml.safe_load(recipe.read_text())
    data["eval"]["runs"] = {run_name: data["eval"]["runs"]["plain"]}
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "deep" / "er" / "out"
    refused(cli("run", recipe, "--out", out), "eval run name", "cannot name a folder")
    assert not out.exists() and not (tmp_path / "victim").exists()


@pytest.mark.parametrize("name", ["../escape", ".", ""])
def test_a_recipe_name_that_is_not_one_folder_is_refused(tiny_model, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    refused(cli("run", _recipe(tmp_path, tiny_model, name=name)), "recipe name")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "runs").exists()


def test_a_model_named_dot_dot_gets_a_folder_inside(tiny_model, tmp_path):
    recipe = _recipe(tmp_path, tiny_model, eval__models=[".."])
    refused(cli("run", recipe, "--out", tmp_path / "out"), "..: not a model checkpoint")
    assert {p.name for p in tmp_path.iterdir()} == {"out", "recipe.yaml"}
    assert not (tmp_path / "out" / "eval" / "samples.jsonl").exists()


def test_a_symlink_out_of_the_run_directory_is_refused(tiny_model, tmp_path):
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    (out / "eval").symlink_to(outside, target_is_directory=True)
    refused(cli("run", _recipe(tmp_path, tiny_model), "--out", out), "symbolic links", "outside")
    assert list(outside.iterdir()) == []
    (out / "eval").unlink()
    (out / "samples.jsonl").symlink_to(outside / "stolen.jsonl")
    refused(cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=2&seed=1")), "symbolic links")
    assert not (outside / "stolen.jsonl").exists()


def test_changed_settings_move_results_aside_inside_the_run(tiny_model, tmp_path):
    out = tmp_path / "out"
    ok(cli("run", _recipe(tmp_path, tiny_model), "--out", out))
    changed = _recipe(
        tmp_path,
        tiny_model,
        eval__runs={"plain": {"benchmarks": ["dyn:addition?digits=3&n=2&seed=1"], "engine": {"name": "program"}}},
    )
    ok(cli("run", changed, "--out", out))
    aside = list((out / "superseded").iterdir())
    assert len(aside) == 1 and (aside[0] / "samples.jsonl").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"out", "recipe.yaml"}


# ---- secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("with_url_login", [False, True])
def test_a_key_the_server_echoes_and_url_credentials_are_written_nowhere(
    tiny_model, tmp_path, echo_server, with_url_login
):
    import base64

    secret, password = "plain-value-7f3a9c", "hunter2pw"
    out = tmp_path / "out"
    url = echo_server.url.replace("://", f"://probe:{password}@") if with_url_login else echo_server.url
    env = {"MY_SERVICE": secret}  # a variable whose name does not look like a key
    ok(
        cli(
            "eval",
            "--out",
            out,
            "--model",
            tiny_model,
            "--engine",
            "openai",
            "--base-url",
            url,
            "--api-key-env",
            "MY_SERVICE",
            "--benchmark",
            "dyn:addition?digits=1&n=2&seed=1",
            "--max-tokens",
            "8",
            env=env,
        )
    )
    written = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    samples = written[out / "samples.jsonl"]
    texts = [json.loads(line)["text"] for line in samples.decode().splitlines()]
    assert len(texts) == 2 and all(
        "auth=" in t and ("[value of $MY_SERVICE removed]" in t or "[URL login removed]" in t) for t in texts
    ), texts  # echoed, then removed
    login = base64.b64encode(f"probe:{password}".encode())
    for path, data in written.items():
        assert secret.encode() not in data and password.encode() not in data and login not in data, path
    if with_url_login:
        run = json.loads((out / "run.json").read_text())
        assert run["config"]["engine"]["base_url"].startswith("http://[credentials removed]@127.0.0.1")


def test_a_recipe_keeps_secrets_out_of_every_file_it_writes(tiny_model, tmp_path, echo_server):
    secret = "recipe-secret-0b1e"
    url = echo_server.url.replace("://", "://probe:s3cretpass@")
    recipe = _recipe(
        tmp_path,
        "smollm2-135m",
        eval__runs={
            "served": {
                "benchmarks": ["dyn:addition?digits=1&n=2&seed=1"],
                "sampling": {"max_tokens": 8},
                "engine": {"name": "openai", "base_url": url, "api_key_env": "SERVICE_LOGIN"},
            }
        },
    )
    out = tmp_path / "out"
    ok(cli("run", recipe, "--out", out, env={"SERVICE_LOGIN": secret}))
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and b"s3cretpass" not in data, path


# ---- the terminal ------------------------------------------------------------------------


def test_escape_sequences_in_names_are_shown_not_obeyed(tmp_path):
    result = cli("eval", "--out", tmp_path / "out", "--benchmark", "nope\x1b[2J\x1b]0;owned\x07")
    text = refused(result, "unknown benchmark", "\\x1b[2J")
    assert "\x1b" not in text and "\x07" not in text


def test_markup_in_names_neither_crashes_nor_vanishes(tmp_path):
    refused(cli("eval", "--out", tmp_path / "out", "--benchmark", "nope[/]"), "nope[/]")
    refused(cli("grade", "--input", tmp_path / "[test]" / "x.jsonl"), "[test]")


# ---- integrity ---------------------------------------------------------------------------


def test_a_second_writer_on_the_same_directory_is_refused(tiny_model, tmp_path):
    out = tmp_path / "out"
    hold = f"from handful.files import RunDirectory\nimport time\nwith RunDirectory({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(
            cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=3&seed=1")),
            "in use by another handful process",
            f"pid {holder.pid}",
        )
        assert not (out / "samples.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    ok(cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=3&seed=1")))
    assert sorted(keys(out / "samples.jsonl")) == sorted(set(keys(out / "samples.jsonl")))


def test_duplicate_lines_left_by_an_older_writer_are_counted_once(tiny_model, tmp_path, caplog):
    out = tmp_path / "out"
    args = program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=3&seed=1")
    ok(cli(*args))
    samples = out / "samples.jsonl"
    lines = samples.read_text().splitlines()
    samples.write_text("\n".join(lines + lines[:2]) + "\n")
    (out / "scores.json").unlink()
    text = ok(cli(*args))
    scores = json.loads((out / "scores.json").read_text())
    assert scores["benchmarks"]["dyn:addition?digits=2"]["n_samples"] == 3
    assert "more than once" in caplog.text or "more than once" in text


def test_an_edited_benchmark_file_is_a_new_benchmark(tiny_model, tmp_path):
    bench, out = tmp_path / "mine.jsonl", tmp_path / "out"
    bench.write_text(json.dumps({"id": "a", "question": "What is 2+2?", "answer": "4"}) + "\n")
    spec = f"jsonl:{bench}"
    ok(cli("eval", "--out", out, "--model", tiny_model, "--benchmark", spec, "--max-tokens", "4"))
    bench.write_text(json.dumps({"id": "a", "question": "What is 3+3?", "answer": "6"}) + "\n")
    refused(
        cli("eval", "--out", out, "--model", tiny_model, "--benchmark", spec, "--max-tokens", "4"),
        "other settings",
        "problems",
    )


def test_samples_are_never_adopted_under_other_settings(tiny_model, tmp_path):
    out = tmp_path / "out"
    ok(cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=3&seed=1")))
    (out / "run.json").unlink()
    before = (out / "samples.jsonl").read_bytes()
    refused(
        cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=3&seed=1", "--max-tokens", "99")),
        "run.json is missing",
    )
    assert (out / "samples.jsonl").read_bytes() == before
    ok(cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=3&seed=1")))  # same settings: adopted
    assert (out / "samples.jsonl").read_bytes() == before


def _problems(path: Path, ids: list[str]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": i, "source": "t", "question": f"What is {n}+1?", "answer": str(n + 1)}) + "\n"
            for n, i in enumerate(ids)
        )
    )
    return path


def test_duplicate_ids_in_a_benchmark_are_refused_before_generating(tiny_model, tmp_path):
    bench = _problems(tmp_path / "dup.jsonl", ["a", "b", "a"])
    out = tmp_path / "out"
    refused(cli("eval", "--out", out, "--model", tiny_model, "--benchmark", bench), "'a'", "more than once")
    assert not (out / "samples.jsonl").exists() and not (out / "run.json").exists()


def test_duplicate_ids_in_a_distill_problem_set_are_refused(tiny_model, tmp_path):
    bench = _problems(tmp_path / "dup.jsonl", ["x", "x"])
    refused(
        cli("distill", "--out", tmp_path / "out", "--problems", bench, "--teacher", f"hf:{tiny_model}"),
        "'x'",
        "more than once",
    )
    assert not (tmp_path / "out" / "traces.jsonl").exists()


def test_duplicate_ids_in_an_imported_trace_file_are_refused(tmp_path):
    rows = [
        {"id": 1, "question": "1+1?", "answer": "2", "thinking": "t", "response": "\\boxed{2}"},
        {"id": 1, "question": "2+2?", "answer": "4", "thinking": "t", "response": "\\boxed{4}"},
    ]
    traces = tmp_path / "t.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refused(cli("distill", "--out", tmp_path / "out", "--import", traces), "appears twice")
    assert not (tmp_path / "out" / "sft.jsonl").exists()


def test_duplicate_ids_within_one_pool_name_that_pool_once(tmp_path):
    pool = _problems(tmp_path / "pool.jsonl", ["p", "q", "p"])
    text = refused(cli("curate", "--out", tmp_path / "out", "--pool", pool, "--target", "1"), "'p'", "more than once")
    assert "both" not in text


@pytest.mark.parametrize(
    "bad, needle",
    [
        (["--benchmark", "gsm8kk"], "unknown benchmark"),
        (["--max-tokens", "0"], "max_tokens"),
        (["--model", "smolm2"], "unknown model"),
        (["--engine", "vllm-typo"], "engine"),
    ],
)
def test_a_failed_start_writes_nothing_and_the_corrected_command_runs(tiny_model, tmp_path, bad, needle):
    out = tmp_path / "out"
    good = {
        "--benchmark": "dyn:addition?digits=2&n=2&seed=1",
        "--max-tokens": "64",
        "--model": str(tiny_model),
        "--engine": "program",
    }
    given = {**good, bad[0]: bad[1]}
    result = cli("eval", "--out", out, *[x for kv in given.items() for x in kv])
    refused(result, needle, code=result.exit_code if result.exit_code == 2 else 1)
    assert not out.exists() or tree(out) <= {".handful.lock", ".handful.lock.pid"}
    ok(cli("eval", "--out", out, *[x for kv in good.items() for x in kv]))


# ---- model names for servers --------------------------------------------------------------


@pytest.mark.parametrize("teacher", ["openai:qwq-32b", "openai:deepseek-reasoner"])
def test_a_served_teacher_is_the_servers_to_name(tmp_path, echo_server, teacher):
    out = tmp_path / "out"
    ok(
        cli(
            "distill",
            "--out",
            out,
            "--problems",
            "dyn:addition?digits=1&n=2&seed=3",
            "--teacher",
            teacher,
            "--base-url",
            echo_server.url,
            "--max-tokens",
            "16",
            "--keep",
            "all",
            env={"HF_HUB_OFFLINE": "1"},
        )
    )
    rows = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == [teacher.split(":")[1]] * 2


def _served_models(recipe: dict) -> list[tuple[str, dict]]:
    """(model, engine settings) of every stage of a recipe that talks to a server."""
    found = [(recipe.get("model", "smollm2-135m"), {"engine": {"name": "openai"}})]  # the student, served as vLLM would
    teacher = (recipe.get("distill") or {}).get("teacher") or {}
    if (teacher.get("engine") or {}).get("name") == "openai":
        found.append((teacher["model"], teacher))
    for ref in ((recipe.get("curate") or {}).get("difficulty") or {}).get("references", []):
        if (ref.get("engine") or {}).get("name") == "openai":
            found.append((ref["model"], ref))
    return found


@pytest.mark.parametrize("recipe_file", sorted(SHIPPED_RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipes_served_models_resolve_against_a_local_server(
    tmp_path, echo_server, recipe_file, monkeypatch
):
    from handful.config import EvalConfig
    from handful.evaluation import evaluate

    recipe = yaml.safe_load(recipe_file.read_text())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id's tokenizer is not fetched: the server has the model
    for i, (model, settings) in enumerate(_served_models(recipe)):
        engine = {**settings["engine"], "base_url": echo_server.url, "concurrency": 2}
        if engine.get("api_key_env"):
            monkeypatch.setenv(engine["api_key_env"], "local-test-key")
        cfg = EvalConfig(
            model=model,
            benchmarks=["dyn:addition?digits=1&n=1&seed=0"],
            engine=engine,
            sampling={**settings.get("sampling", {}), "max_tokens": 16},
            n=1,
        )
        scores = evaluate(cfg, tmp_path / f"served-{i}")
        assert scores.benchmarks["dyn:addition?digits=1"].n_samples == 1


# ---- messages, not tracebacks --------------------------------------------------------------


def test_directories_and_files_in_the_wrong_places(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    refused(cli("grade", "--input", folder), "is a directory")
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"gold": "2", "pred": "\\boxed{2}"}) + "\n")
    refused(cli("grade", "--input", answers, "--output", folder, "--workers", "0"), "is a directory")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused(cli("eval", "--out", a_file, "--benchmark", "dyn:addition?n=1&seed=1"), "is a file")
    refused(cli("curate", "--out", a_file / "sub", "--pool", "dyn:addition?n=3&seed=1", "--target", "1"), "file")


def test_a_device_is_never_replaced_by_an_output_file(tmp_path):
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"gold": "2", "pred": "\\boxed{2}"}) + "\n")
    fifo = tmp_path / "fifo"  # stands for a device: renaming a file over /dev/null would break the machine
    os.mkfifo(fifo)
    refused(cli("grade", "--input", answers, "--output", fifo, "--workers", "0"), "not a regular file")
    assert fifo.is_fifo()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KiB file system of its own (root can mount one): writing past it fails with ENOSPC."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def test_a_full_disk_says_finished_work_is_kept_and_a_rerun_finishes(tiny_model, tmp_path, tiny_disk):
    import shutil

    out = tiny_disk / "out"
    args = ["--benchmark", "dyn:addition?digits=6&n=200&seed=4", "--set", "grade.workers=0"]
    refused(cli(*program_eval(out, tiny_model, *args)), "no space left", "finished work is kept")
    kept = keys(out / "samples.jsonl")
    assert 0 < len(kept) < 200 and len(set(kept)) == len(kept)
    roomy = tmp_path / "roomy"
    shutil.copytree(out, roomy, ignore=shutil.ignore_patterns(".handful.lock*"))
    ok(cli(*program_eval(roomy, tiny_model, *args)))
    done = keys(roomy / "samples.jsonl")
    assert len(done) == 200 == len(set(done)) and done[: len(kept)] == kept


def test_an_unwritable_out_is_a_message(tmp_path):
    refused(
        cli("eval", "--out", "/proc/handful-probe/out", "--benchmark", "dyn:addition?n=1&seed=1"), "/proc/handful-probe"
    )


def test_config_files_that_are_not_yaml_or_not_utf8(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("model: caf\xe9\n".encode("latin-1"))
    refused(cli("eval", "--out", tmp_path / "o1", "--config", latin), "not UTF-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    refused(cli("eval", "--out", tmp_path / "o2", "--config", broken), "not valid YAML")
    refused(cli("eval", "--out", tmp_path / "o3", "--config", tmp_path), "is a directory")
    refused(cli("eval", "--out", tmp_path / "o4", "--config", tmp_path / "missing.yaml"), "no such file")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    refused(cli("eval", "--out", tmp_path / "o5", "--config", listing), "mapping")


@pytest.mark.parametrize(
    "override, needle",
    [
        ("sampling.temperature=[1", "not valid YAML"),
        ("nonsense", "expected key.path=value"),
        ("sampling.temprature=1", "unknown setting"),
        ("engine.batch_size=0", "batch_size"),
        ("n=0", "n:"),
        ("limit=-1", "limit"),
    ],
)
def test_bad_set_overrides(tmp_path, override, needle):
    refused(cli("eval", "--out", tmp_path / "out", "--set", override), needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--temperature", "-1", "temperature"),
        ("--top-p", "5", "top_p"),
        ("--top-k", "-3", "top_k"),
        ("--max-tokens", "-5", "max_tokens"),
        ("--n", "0", "n:"),
    ],
)
def test_sampling_values_out_of_range_are_refused_not_recorded(tmp_path, option, value, needle):
    refused(cli("eval", "--out", tmp_path / "out", option, value), needle)
    assert not (tmp_path / "out").exists()


def test_map_without_equals(tmp_path):
    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"q": "1+1?", "answer": "2", "thinking": "t", "response": "2"}) + "\n")
    refused(cli("distill", "--out", tmp_path / "out", "--import", traces, "--map", "question"), "--map", "KEY=FIELD")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--max-thinking", "64,abc"], "--max-thinking"),
        (["--votes", "0"], "votes"),
        (["--waits", "-1"], "waits"),
        (["--max-thinking", "0"], "max_thinking"),
    ],
)
def test_scale_lists_are_checked_before_generating(tmp_path, args, needle):
    refused(cli("scale", "--out", tmp_path / "out", "--benchmark", "dyn:addition?n=2&seed=1", *args), needle)
    assert not (tmp_path / "out" / "points").exists()


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("dyn:addition?digits", "KEY=VALUE"),
        ("dyn:addition?digits=x", "must be an integer"),
        ("dyn:addition?digits=99", "between"),
        ("dyn:addition?colour=3", "unknown parameter"),
        ("dyn:additon?n=3", "unknown task"),
        ("dyn:addition?n=0", "at least 1"),
        ("dyn:addition?seed=-1&n=2", "seed must be 0 or more"),
        ("dyn:addition?n=1000000000&seed=1", "--limit"),
    ],
)
def test_bad_procedural_specs(tmp_path, spec, needle):
    refused(cli("eval", "--out", tmp_path / "out", "--benchmark", spec), needle)


def test_damaged_run_files_are_named(tiny_model, tmp_path):
    out = tmp_path / "out"
    args = program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=2&seed=1")
    ok(cli(*args))
    run = out / "run.json"
    whole = run.read_text()
    run.write_text(whole[: len(whole) // 2])
    refused(cli(*args), "run.json", "damaged")
    run.write_text("")
    refused(cli(*args), "run.json", "damaged")
    run.write_text(whole)
    ok(cli(*args))


def test_a_damaged_manifest_is_named(tiny_model, tmp_path):
    out = tmp_path / "out"
    ok(cli("run", _recipe(tmp_path, tiny_model), "--out", out))
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    refused(cli("transparency", out), "manifest.json", "damaged")
    refused(cli("report", out), "manifest.json", "damaged")
    refused(cli("transparency", tmp_path / "nowhere"), "nowhere", "no such directory")


def test_files_that_are_not_what_their_scheme_says(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet at all")
    refused(
        cli("eval", "--out", tmp_path / "o1", "--benchmark", f"parquet:{fake}?question=q&answer=a"),
        "not a readable parquet",
    )
    existing = _problems(tmp_path / "real.jsonl", ["a"])
    refused(cli("eval", "--out", tmp_path / "o2", "--benchmark", f"csv:{existing}"), "unknown scheme 'csv'")
    refused(
        cli("curate", "--out", tmp_path / "o3", "--pool", f"csv:{existing}", "--target", "1"), "unknown scheme 'csv'"
    )
    refused(cli("eval", "--out", tmp_path / "o4", "--benchmark", f"jsonl:{existing}?colour=red"), "unknown mapping key")


def test_a_hub_dataset_while_offline_is_a_message(tmp_path):
    pytest.importorskip("datasets")
    # A process of its own: the hub clients read HF_HUB_OFFLINE when they are imported.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    spec = "hf:nobody/nothing?question=q&answer=a"
    done = subprocess.run(
        [sys.executable, "-m", "handful", "eval", "--out", str(tmp_path / "out"), "--benchmark", spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "could not be loaded" in errors[0] and "jsonl:" in errors[0], done.stderr


def test_an_unreachable_hub_is_named_at_once(tmp_path):
    pytest.importorskip("datasets")
    started = time.monotonic()
    refused(
        cli(
            "eval",
            "--out",
            tmp_path / "out",
            "--benchmark",
            "hf:nobody/nothing?question=q&answer=a",
            env={"HF_ENDPOINT": "https://hub.invalid", "HF_HUB_OFFLINE": None, "HF_DATASETS_OFFLINE": None},
        ),
        "hub.invalid",
        "cannot be reached",
    )
    assert time.monotonic() - started < 15  # the hub client alone retries for about 25 s


def test_a_gpqa_file_with_the_wrong_fields(tmp_path):
    wrong = tmp_path / "gpqa.jsonl"
    wrong.write_text(json.dumps({"Question": "q?", "Correct Answer": "x"}) + "\n")
    refused(
        cli("eval", "--out", tmp_path / "out", "--benchmark", "gpqa_diamond", "--data", wrong), f"{wrong}:1", "options"
    )
    refused(cli("eval", "--out", tmp_path / "out2", "--benchmark", "gpqa_diamond"), "--data")


def test_truncated_and_broken_record_files(tmp_path):
    whole = gzip.compress(
        (
            "".join(
                json.dumps({"id": str(i), "source": "t", "question": "q", "answer": "1"}) + "\n" for i in range(200)
            )
        ).encode()
    )
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    text = refused(cli("eval", "--out", tmp_path / "o1", "--benchmark", cut), "cut.jsonl.gz", "damaged")
    assert "Aborted" not in text
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text(json.dumps({"id": "1", "source": "t", "question": "q", "answer": "1"}) + "\n{not json\n")
    refused(cli("eval", "--out", tmp_path / "o2", "--benchmark", bad_line), "bad.jsonl:2", "malformed JSON")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refused(cli("eval", "--out", tmp_path / "o3", "--benchmark", empty), "empty")
    wrong_field = tmp_path / "wrong.jsonl"
    wrong_field.write_text(
        json.dumps({"id": "1", "source": "t", "question": "q", "answer": "1", "colour": "red"}) + "\n"
    )
    refused(cli("eval", "--out", tmp_path / "o4", "--benchmark", wrong_field), "wrong.jsonl:1", "colour")
    grade_input = tmp_path / "g.jsonl"
    grade_input.write_text(json.dumps({"gold": "1"}) + "\n")
    refused(cli("grade", "--input", grade_input, "--workers", "0"), "g.jsonl:1", "pred")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--teacher", "hf:"], "no model after"),
        (["--teacher", "openai:"], "no model after"),
    ],
)
def test_an_empty_teacher_model_is_refused(tmp_path, args, needle):
    refused(cli("distill", "--out", tmp_path / "out", "--problems", "dyn:addition?n=2&seed=1", *args), needle)


def test_an_empty_out_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(cli("eval", "--out", "", "--benchmark", "dyn:addition?n=1&seed=1"), "is empty", code=2)
    assert list(tmp_path.iterdir()) == []


def test_a_placeholder_typo_fails_before_any_stage_runs(tiny_model, tmp_path):
    recipe = _recipe(tmp_path, tiny_model)
    data = yaml.safe_load(recipe.read_text())
    data["distill"] = {
        "problems": "dyn:addition?digits=2&n=2&seed=1",
        "teacher": {"model": "@base", "engine": {"name": "program"}},
    }
    data["eval"]["models"] = ["@base", "@trian"]
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    refused(cli("run", recipe, "--out", out), "@trian")
    assert not (out / "distill").exists()


def test_unknown_names_suggest_the_closest(tmp_path):
    refused(cli("eval", "--out", tmp_path / "o", "--model", "smollm-135m"), "unknown model", "smollm2-135m")
    refused(
        cli("curate", "--out", tmp_path / "c", "--pool", "math-trian", "--target", "2"), "unknown pool", "math-train"
    )
    refused(cli("run", "demo-cpuu", "--dry-run"), "demo-cpu")
    refused(cli("tasks", "sample", "additon"), "unknown task", "addition")
    refused(cli("tasks", "sample", "addition", "--difficulty", "99"), "between")
    refused(cli("tasks", "sample", "addition", "--seed", "-4"), "seed must be 0 or more")


def test_a_200_answer_that_is_not_a_completion(tmp_path):
    server = Server(lambda path, headers, body: (200, {"object": "error", "detail": "upstream busy"}))
    try:
        refused(cli(*served_eval(tmp_path / "out", server.url)), "without a completion")
    finally:
        server.close()


# ---- hangs -------------------------------------------------------------------------------------


def test_a_huge_procedural_benchmark_with_a_limit_draws_only_the_sample(tiny_model, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    ok(cli(*program_eval(out, tiny_model, "--benchmark", "dyn:addition?n=1000000000&seed=5", "--limit", "2")))
    assert time.monotonic() - started < 120  # drawing 10^9 problems would take hours
    assert len(keys(out / "samples.jsonl")) == 2


def test_a_server_that_never_answers_is_given_up_on_with_a_message(tmp_path):
    server = Server(lambda path, headers, body: None)
    try:
        started = time.monotonic()
        result = cli(
            *served_eval(tmp_path / "out", server.url),
            "--set",
            "engine.request_timeout=2",
            "--set",
            "engine.max_retries=1",
        )
        refused(result, "no answer")
        assert time.monotonic() - started < 60
    finally:
        server.close()


def test_every_case_above_kept_finished_records_unique(tiny_model, tmp_path):
    """Kill, rerun, rerun: a run that was interrupted by nothing still has each key once."""
    out = tmp_path / "out"
    args = program_eval(out, tiny_model, "--benchmark", "dyn:addition?digits=2&n=4&seed=2,dyn:linear?n=3&seed=2")
    for _ in range(3):
        ok(cli(*args))
    counted = Counter(keys(out / "samples.jsonl"))
    assert len(counted) == 7 and set(counted.values()) == {1}
