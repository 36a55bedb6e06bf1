"""``agent-lightning serve``: an OpenAI-compatible endpoint that records what the policy sampled.

`ModelServer` (`app`) answers HTTP; `protocol` validates requests and `responses` builds bodies and
stream chunks; `backends` generates them with a local model (`engine`, continuous batching over
`batch`) or forwards them to an upstream; `spans` says what a call records; `watch` follows a
run's checkpoints; `cli` is the ``serve`` command. Importing this package loads none of them.

Every call to ``/v1/chat/completions`` or ``/v1/completions`` records one span ``chat {model}``
(GenAI request/response attributes plus ``agl.prompt.token_ids``, ``agl.response.token_ids``,
``agl.response.logprobs`` and ``agl.policy.version``) as a child of the caller's span, taken from
the W3C ``traceparent``/``baggage`` headers; the baggage's rollout ids tag it. Callers that are not
instrumented use the rollout-scoped base URL ``/rollout/{rollout_id}/attempt/{attempt_id}/v1``.

Choices (``n > 1``): one span per request. ``agl.response.token_ids``/``agl.response.logprobs``
hold choice 0 — the one ``gen_ai.output.messages[0]`` shows and agents continue with — so a
triplet gets exactly the ids of the response its agent saw; every choice's ids and logprobs are
in ``agl.response.choices.token_ids``/``agl.response.choices.logprobs`` (JSON lists, by index).

Token ids include the end-of-sequence token when it was sampled; decoded without special tokens
they give the returned text (before tool-call parsing). With a ``stop`` string the ids run up to
the token that completed it, while the text is cut before it. Logprobs: see `engine`.

Every request's ``model`` is served by the one policy and recorded as given, so that agents
sharing the server can be told apart (selective optimization falls back to the model name).
Streaming (``stream: true``) from a local model sends text as the engine samples it — held back
only while it could still turn into a ``stop`` string or a tool call (see `responses.TextStream`);
tool calls, finish reasons and usage come at the end, and the span is recorded once the
generation finishes, as without streaming. A proxy streams from its upstream
and relays each chunk as it arrives; the span is recorded from the chunks once the stream ends.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ModelServer", "watch_checkpoints"]

_WHERE = {"ModelServer": "agl_trl.serve.app", "watch_checkpoints": "agl_trl.serve.watch"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'agl_trl.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
