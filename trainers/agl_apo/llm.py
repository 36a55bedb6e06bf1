"""The critic/editor client: one chat call with bounded retries.

The `openai` client's own retries are switched off so that the policy is ours and visible: 429s
wait for ``Retry-After`` (or ``retry-after-ms``), 5xx, connection errors and timeouts back off
exponentially, anything else (bad request) fails at once. After `max_retries` the call raises
`LLMError`, which costs the caller one candidate, never the run.

Some failures mean no call can ever succeed, and then the run stops at the first one with
`EndpointError`, one line naming the settings to change: an endpoint that never answered (refused
or timed-out connections before any response), a refused API key, a prompt longer than the
model's context (code ``context_length_exceeded``, as OpenAI and ``agent-lightning serve`` send it).
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from typing import Any, Callable, Sequence

import httpx
import openai

from agl_core.cli.config import ConfigError

log = logging.getLogger("agentlightning.apo")

#: Longest Retry-After we honour; a server asking for more gets this (the call stays bounded).
MAX_RETRY_AFTER_S = 120.0


#: Longest wait for a connection; an endpoint that does not accept one by then is unreachable.
CONNECT_TIMEOUT_S = 10.0

_SETTINGS = "apo.endpoint and apo.api_key in the config (or OPENAI_BASE_URL and OPENAI_API_KEY)"


class LLMError(RuntimeError):
    """A critic/editor call that did not produce text, after retries where retrying made sense."""


class EndpointError(ConfigError):
    """The critic/editor endpoint cannot serve this run at all; the message says what to set."""


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
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            max_retries=0,
        )
        #: Whether the endpoint ever sent a response: before it has, a failed connection is fatal.
        self.answered = False

    @property
    def endpoint(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def _fatal(self, exc: openai.APIError) -> EndpointError | None:
        """The `EndpointError` that `exc` means, if no later call could succeed either."""
        if isinstance(exc, openai.APIConnectionError) and not self.answered:
            cause = exc.__cause__
            if not isinstance(exc, openai.APITimeoutError) or isinstance(cause, httpx.ConnectTimeout):
                return EndpointError(f"apo: cannot reach the critic/editor endpoint {self.endpoint} ({cause or exc}); set {_SETTINGS}")
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return EndpointError(f"apo: the critic/editor endpoint {self.endpoint} refused the API key (HTTP {exc.status_code}); set {_SETTINGS}")
        if isinstance(exc, openai.BadRequestError) and exc.code == "context_length_exceeded":
            message = exc.body.get("message", exc.message) if isinstance(exc.body, dict) else exc.message
            return EndpointError(
                f"apo: the critic/editor prompt does not fit {self.model!r} at {self.endpoint}: {message}; "
                "use a model with a longer context (apo.model, apo.endpoint)"
            )
        return None

    def complete(self, messages: Sequence[dict[str, Any]]) -> str:
        extra: dict[str, Any] = {} if self.temperature is None else {"temperature": self.temperature}
        for attempt in range(self.max_retries + 1):
            try:
                # our messages are plain dicts of OpenAI's shape, not the SDK's TypedDicts
                response = self.client.chat.completions.create(model=self.model, messages=list(messages), **extra)  # type: ignore[arg-type]
            except openai.APIError as exc:
                self.answered = self.answered or isinstance(exc, openai.APIStatusError)
                if fatal := self._fatal(exc):
                    raise fatal from None
                if isinstance(exc, openai.RateLimitError):
                    delay: float | None = retry_after_s(exc.response)
                elif isinstance(exc, (openai.APIConnectionError, openai.InternalServerError)):  # timeouts included
                    delay = None
                else:
                    raise LLMError(f"{type(exc).__name__}: {exc}") from exc
                error: Exception = exc
            else:
                self.answered = True
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
