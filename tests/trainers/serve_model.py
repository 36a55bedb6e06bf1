"""A tiny chat model for the serve tests, built in seconds: it has memorised two conversations.

Greedy decoding gives ``hello there`` to "Say hi" and a calculator tool call (in the tiny model's
Hermes-style ``<tool_call>`` format) to "What is 2+3?" when the tool is offered.
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from agl_trl.tiny_model import CHAT_TEMPLATE

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]
GREETING = [{"role": "user", "content": "Say hi"}]
GREETING_REPLY = "hello there"
QUESTION = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "What is 2+3?"}]
TOOL_ARGUMENTS = {"expression": "2+3"}


def _conversations() -> list[tuple[list[dict[str, Any]], Any]]:
    call = {"type": "function", "function": {"name": "calculator", "arguments": TOOL_ARGUMENTS}}
    return [
        (GREETING + [{"role": "assistant", "content": GREETING_REPLY}], None),
        (QUESTION + [{"role": "assistant", "content": "", "tool_calls": [call]}], TOOLS),
    ]


def build(steps: int = 60, seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    torch.manual_seed(seed)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(["Say hi hello there What is 2+3? Use tools. calculator expression arithmetic"] * 4, trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<tool_call>", "</tool_call>")])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    rows = []
    for chat, tools in _conversations():
        prompt = tokenizer.apply_chat_template(chat[:-1], tools=tools, add_generation_prompt=True, return_dict=False)
        full = tokenizer.apply_chat_template(chat, tools=tools, return_dict=False)
        rows.append((list(full), len(prompt)))
    width = max(len(ids) for ids, _ in rows)
    x = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, prompt_len) in enumerate(rows):
        x[i, : len(ids)] = torch.tensor(ids)
        labels[i, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
        attention[i, : len(ids)] = 1
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(steps):
        model(input_ids=x, attention_mask=attention, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), tokenizer
