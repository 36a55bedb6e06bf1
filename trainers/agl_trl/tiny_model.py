"""A tiny chat model built on this machine — no downloads — for demos and tests (model name ``tiny``).

``build_tiny_model(spec, corpus)`` trains a byte-level BPE tokenizer on a warm-start corpus of chats
(`WarmStart`), creates a random-init Llama-architecture model (not Qwen2: transformers 5 loads any
``qwen2`` model's tokenizer as ``Qwen2Tokenizer``, which swaps in Qwen's own pre-tokenizer and
breaks ours), warm-starts it with a short supervised pass on the corpus's assistant turns and saves
both with ``save_pretrained`` under ``~/.cache/agent-lightning/models/<name>-<hash>``; the hash
covers every build parameter and the corpus, so a second call returns the cached path at once. The
result is an ordinary model folder: everything downstream takes a path or a hub name and never
needs to know it is tiny.

What the model starts out knowing is the corpus's business: a caller with a task of its own passes
chats of it (the demo passes its calculator chats). Without one, the corpus is the built-in
``math`` task set's training questions answered with the number (`math_corpus`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    trainers,
)
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import render_jinja_template

from agl_core.paths import cache_dir
from agl_core.training.tasksets import load_tasks

# Bump when the build code changes in a way that changes the result, to invalidate caches.
_BUILD_VERSION = 4

# ChatML-style template with OpenAI tools. Tools render as one line each (the tiny model has a short
# context); tool calls render in the Hermes/Qwen form ``<tool_call>{"name": …, "arguments": …}</tool_call>``
# that servers already know how to parse. ``{% generation %}`` marks assistant tokens for SFT masks.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(tools='') -%}"
    "{%- for tool in tools or [] -%}"
    "{%- set fn = tool.function if tool.function is defined else tool -%}"
    "{%- set params = ((fn.parameters or {}).properties or {}) | list -%}"
    "{%- set ns.tools = ns.tools + '\\n- ' + fn.name + '(' + params | join(', ') + ')' -%}"
    "{%- if fn.description -%}{%- set ns.tools = ns.tools + ': ' + fn.description -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if ns.tools -%}{%- set ns.tools = 'Tools:' + ns.tools -%}{%- endif -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{{- '<|im_start|>system\\n' + messages[0].content + ('\\n' + ns.tools if ns.tools else '') + '<|im_end|>\\n' -}}"
    "{%- elif ns.tools -%}"
    "{{- '<|im_start|>system\\n' + ns.tools + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set content = message.content if message.content is string else "
    "(message.content or []) | selectattr('text', 'defined') | map(attribute='text') | join('') -%}"
    "{%- if message.role == 'system' and loop.first -%}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{{- content -}}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- set call = call.function if call.function is defined else call -%}"
    "{{- '<tool_call>{\"name\": \"' + call.name + '\", \"arguments\": ' -}}"
    "{{- (call.arguments if call.arguments is string else call.arguments | tojson) + '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>"]


Chat = list[dict[str, Any]]


@dataclass(frozen=True)
class WarmStart:
    """A warm-start corpus: chats (OpenAI-style messages, ending with the assistant turns to learn)
    and the tools offered in every one of them. The warm start takes its rows in order, cycling
    when it needs more than there are."""

    chats: list[Chat]
    tools: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def digest(self) -> str:
        payload = json.dumps({"chats": self.chats, "tools": self.tools}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def math_corpus(n: int = 2048) -> WarmStart:
    """The default corpus: the built-in ``math`` task set's training questions, answered with the
    number (its eval split never appears)."""
    tasks = load_tasks("math", "train", n=n)
    chats = [
        [{"role": "user", "content": t.input["question"]}, {"role": "assistant", "content": str(t.input["answer"])}]
        for t in tasks
    ]
    return WarmStart(chats)


@dataclass(frozen=True)
class TinyModelSpec:
    """The model's size and warm-start schedule; with the corpus, its hash names the cache folder."""

    name: str = "tiny"
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    warmstart_steps: int = 300
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0

    def digest(self, corpus: WarmStart) -> str:
        payload = json.dumps({"v": _BUILD_VERSION, **dataclasses.asdict(self), "corpus": corpus.digest()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


#: Chats the tokenizer is trained on (the first of the corpus): enough for a 2k vocabulary.
TOKENIZER_CHATS = 4000


def tiny_model_path(spec: TinyModelSpec = TinyModelSpec(), corpus: WarmStart | None = None) -> Path:
    """Where `build_tiny_model` caches the model of `spec` warm-started on `corpus` (default `math_corpus`)."""
    return cache_dir() / "models" / f"{spec.name}-{spec.digest(corpus or math_corpus())}"


def build_tiny_model(
    spec: TinyModelSpec = TinyModelSpec(), corpus: WarmStart | None = None, *, force: bool = False, log: bool = True
) -> Path:
    """Build (or reuse) the tiny model warm-started on `corpus` (default `math_corpus`) and return
    its folder, loadable with ``from_pretrained``."""
    corpus = corpus or math_corpus()
    if not corpus.chats:
        raise ValueError("the warm-start corpus has no chats")
    path = tiny_model_path(spec, corpus)
    if (path / "config.json").exists() and not force:
        return path
    if log:  # only here: a cached model is returned above without a word
        print(f"building the tiny model {spec.name!r} (once; cached at {path}) ...", flush=True)
    start = time.perf_counter()
    random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    texts = render_jinja_template(corpus.chats[:TOKENIZER_CHATS], tools=corpus.tools or None, chat_template=CHAT_TEMPLATE)[0]
    tokenizer = train_tokenizer(texts, spec)
    model = new_model(tokenizer, spec)
    warm_start(model, tokenizer, corpus, spec, log=log)
    staging = path.with_name(path.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)  # atomic publish: a crash never leaves a half-written cache entry
    if log:
        print(f"built {spec.name} ({count_parameters(model) / 1e6:.2f}M params) in {time.perf_counter() - start:.0f}s: {path}")
    return path


def train_tokenizer(texts: list[str], spec: TinyModelSpec) -> PreTrainedTokenizerFast:
    """Byte-level BPE that splits numbers into chunks of up to 3 digits (as Llama 3 does) and lets merges
    span words within a line, so a chat's fixed scaffolding (prompts, tool-call JSON) compresses into a few
    tokens and copying a number is copying one or two tokens."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", "isolated"),  # never merge across a role header
            pre_tokenizers.Split(Regex(r"\d{1,3}"), "isolated"),  # numbers in 3-digit chunks, as Llama 3
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(SPECIAL_TOKENS)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=512,
    )


def new_model(tokenizer: PreTrainedTokenizerFast, spec: TinyModelSpec) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encode_chats(
    tokenizer: PreTrainedTokenizerFast, chats: list[Chat], tools: list[dict[str, Any]] | None
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids and assistant-token masks (1 where the model should learn to produce the token)."""
    encoded = tokenizer.apply_chat_template(
        chats, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return encoded["input_ids"], encoded["assistant_masks"]


def warm_start(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, corpus: WarmStart, spec: TinyModelSpec, *, log: bool = True
) -> None:
    """Supervised warm start on assistant tokens only; AdamW with warmup and cosine decay."""
    rows = spec.warmstart_steps * spec.batch_size
    chats = [corpus.chats[i % len(corpus.chats)] for i in range(min(rows, len(corpus.chats)))]
    ids, masks = encode_chats(tokenizer, chats, corpus.tools or None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    warmup = max(1, spec.warmstart_steps // 20)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, spec.warmstart_steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model.train()
    for step in range(spec.warmstart_steps):
        batch = [i % len(ids) for i in range(step * spec.batch_size, (step + 1) * spec.batch_size)]
        input_ids, labels, attention = _pad_batch([ids[i] for i in batch], [masks[i] for i in batch], tokenizer.pad_token_id)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if log and (step % 50 == 0 or step == spec.warmstart_steps - 1):
            print(f"warm start {step + 1}/{spec.warmstart_steps}: loss {loss.item():.4f}")
    model.eval()


def _pad_batch(
    ids: list[list[int]], masks: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad for training; labels are -100 outside assistant tokens."""
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    labels = torch.full((len(ids), width), -100, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (row, mask) in enumerate(zip(ids, masks)):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor([t if m else -100 for t, m in zip(row, mask)])
        attention[i, : len(row)] = 1
    return input_ids, labels, attention
