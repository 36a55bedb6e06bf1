"""The critic/editor client: one chat call with bounded retries.

The `openai` client's own retries are switched off so that the policy is ours and visible: 429s
wait for ``Retry-After`` (or ``retry-after-ms``), 5xx, connection errors and timeouts back off
exponentially, anything else (bad request, auth) fails at once. After `max_retries` the call
raises `LLMError`, which costs the caller one candidate, never the run.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from typing import Any, Callable, Sequence

import openai

log = logging.getLogger("agentlightning.apo")

#: Longest Retry-After we honour; a server asking for more gets this (the call stays bounded).
MAX_RETRY_AFTER_S = 120.0


class LLMError(RuntimeError):
    """A critic/editor call that did not produce text, after retries where retrying made sense."""


def retry_after_s(response: Any) -> float | None:
    """Seconds a 429 response asks us to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or date)."""
    headers = getattr(response, "headers", None) or {}
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class TextLLM:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "agl-local",
            timeout=timeout_s,
            max_retries=0,
        )

    def complete(self, messages: Sequence[dict[str, Any]]) -> str:
        extra: dict[str, Any] = {} if self.temperature is None else {"temperature": self.temperature}
        for attempt in range(self.max_retries + 1):
            try:
                # our messages are plain dicts of OpenAI's shape, not the SDK's TypedDicts
                response = self.client.chat.completions.create(model=self.model, messages=list(messages), **extra)  # type: ignore[arg-type]
            except openai.RateLimitError as exc:
                delay = retry_after_s(exc.response)
                error: Exception = exc
            except (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError) as exc:
                delay, error = None, exc
            except openai.APIError as exc:
                raise LLMError(f"{type(exc).__name__}: {exc}") from exc
            else:
                text = response.choices[0].message.content if response.choices else None
                if not text or not text.strip():
                    raise LLMError("the model returned no text")
                return text
            if attempt == self.max_retries:
                raise LLMError(f"gave up after {attempt + 1} tries: {type(error).__name__}: {error}") from error
            if delay is not None:
                wait = min(delay, MAX_RETRY_AFTER_S)
            else:
                wait = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            log.info("critic/editor call failed (%s); retry %d in %.1f s", type(error).__name__, attempt + 1, wait)
            self.sleep(wait)
        raise AssertionError("unreachable")
