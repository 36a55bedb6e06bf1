"""The tiny model builds offline, caches by its parameters and loads back as an ordinary HF model folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from agl_trl import arith  # noqa: E402
from agl_trl.tiny_model import TinyModelSpec, build_tiny_model, tiny_model_path  # noqa: E402

SPEC = TinyModelSpec(name="tiny-test", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                     warmstart_steps=2, batch_size=8)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield build_tiny_model(SPEC, log=False)
    mp.undo()


def test_build_is_cached_by_parameters(built: Path) -> None:
    assert built == tiny_model_path(SPEC) and built.name.startswith("tiny-test-")
    assert (built / "config.json").exists() and not built.with_name(built.name + ".tmp").exists()
    start = time.perf_counter()
    assert build_tiny_model(SPEC, log=False) == built
    assert time.perf_counter() - start < 0.5
    assert tiny_model_path(TinyModelSpec(name="tiny-test", tool_rate=0.5)) != built


def test_loads_back_with_auto_classes_and_same_tokens(built: Path) -> None:
    tok = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert model.config.vocab_size == len(tok)
    chat = arith.warmstart_conversation(arith.ArithTask(123, "*", 456), use_tool=True)
    direct = arith.warmstart_conversation(arith.ArithTask(123, "*", 456), use_tool=False)
    encoded = tok.apply_chat_template(chat, tools=[arith.CALCULATOR_TOOL], return_dict=True,
                                      return_assistant_tokens_mask=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    text = tok.decode(ids)
    assert "- calculator(): Compute the exact answer to the question." in text
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == (
        '<tool_call>{"name": "calculator", "arguments": {}}</tool_call><|im_end|>'
    )
    encoded = tok.apply_chat_template(direct, tools=[arith.CALCULATOR_TOOL], return_dict=True,
                                      return_assistant_tokens_mask=True)
    assert tok.decode([t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m]) == (
        "The answer is 56088.<|im_end|>"
    )
    # Numbers split into 3-digit chunks and the tool-call markers are whole tokens that survive decoding.
    chunks = [tok.decode([t]) for t in tok("56088")["input_ids"]]
    assert "".join(chunks) == "56088" and all(c.isdigit() and len(c) <= 3 for c in chunks)
    assert len(tok("<tool_call>")["input_ids"]) == 1
    assert "<tool_call>" in tok.decode(tok("<tool_call>x</tool_call>")["input_ids"], skip_special_tokens=True)
    # The generation prompt ends exactly where an assistant reply starts.
    prompt = tok.apply_chat_template(arith.prompt_messages(arith.ArithTask(1, "+", 2)), add_generation_prompt=True,
                                     tokenize=False)
    assert prompt.endswith("What is 1+2?<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
