"""The tiny model builds offline on the corpus it is given, caches by its parameters and corpus, and
loads back as an ordinary HF model folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from agl_core.training.tasksets import load_tasks  # noqa: E402
from agl_trl.tiny_model import (  # noqa: E402
    TinyModelSpec,
    WarmStart,
    build_tiny_model,
    math_corpus,
    tiny_model_path,
)

SPEC = TinyModelSpec(name="tiny-test", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                     warmstart_steps=2, batch_size=8)  # fmt: skip
TOOL = {
    "type": "function",
    "function": {"name": "calculator", "description": "Compute the exact answer.", "parameters": {"type": "object", "properties": {}}},
}
CALL = {"id": "call_0", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}


def chat(question: str, answer: int | None = None) -> list[dict]:
    """A demonstration: the calculator call, or (given `answer`) a direct reply."""
    reply = {"role": "assistant", "content": f"The answer is {answer}."} if answer is not None else {
        "role": "assistant", "content": "", "tool_calls": [CALL]}  # fmt: skip
    return [{"role": "user", "content": question}, reply]


CORPUS = WarmStart([chat(f"What is {a}*{b}?", a * b if a % 2 else None) for a in range(100, 105) for b in (7, 8)], [TOOL])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield build_tiny_model(SPEC, CORPUS, log=False)
    mp.undo()


def test_build_is_cached_by_parameters_and_corpus(built: Path) -> None:
    assert built == tiny_model_path(SPEC, CORPUS) and built.name.startswith("tiny-test-")
    assert (built / "config.json").exists() and not built.with_name(built.name + ".tmp").exists()
    start = time.perf_counter()
    assert build_tiny_model(SPEC, CORPUS, log=False) == built
    assert time.perf_counter() - start < 0.5
    assert tiny_model_path(TinyModelSpec(name="tiny-test", learning_rate=1e-3), CORPUS) != built
    assert tiny_model_path(SPEC, WarmStart(CORPUS.chats[:3], [TOOL])) != built
    assert tiny_model_path(SPEC) == tiny_model_path(SPEC, math_corpus()) != built


def test_the_default_corpus_never_shows_a_held_out_math_question() -> None:
    questions = {c[0]["content"] for c in math_corpus().chats}
    assert len(questions) == 2048 and not questions & {t.input["question"] for t in load_tasks("math", "eval")}


def test_loads_back_with_auto_classes_and_same_tokens(built: Path) -> None:
    tok = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert model.config.vocab_size == len(tok)
    for conversation, learned in (
        (chat("What is 123*456?"), '<tool_call>{"name": "calculator", "arguments": {}}</tool_call><|im_end|>'),
        (chat("What is 123*456?", 56088), "The answer is 56088.<|im_end|>"),
    ):
        encoded = tok.apply_chat_template(conversation, tools=[TOOL], return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = encoded["input_ids"], encoded["assistant_masks"]
        assert "- calculator(): Compute the exact answer." in tok.decode(ids)
        assert tok.decode([t for t, m in zip(ids, mask) if m]) == learned
    # Numbers split into 3-digit chunks and the tool-call markers are whole tokens that survive decoding.
    chunks = [tok.decode([t]) for t in tok("56088")["input_ids"]]
    assert "".join(chunks) == "56088" and all(c.isdigit() and len(c) <= 3 for c in chunks)
    assert len(tok("<tool_call>")["input_ids"]) == 1
    assert "<tool_call>" in tok.decode(tok("<tool_call>x</tool_call>")["input_ids"], skip_special_tokens=True)
    # The generation prompt ends exactly where an assistant reply starts.
    prompt = tok.apply_chat_template(chat("What is 1+2?")[:1], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("What is 1+2?<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
