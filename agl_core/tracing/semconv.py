"""Every span and attribute name of the span contract, in one place.

OpenTelemetry GenAI semantic conventions first; ``agl.*`` only where GenAI has no word.
Messages use the GenAI JSON shape: ``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``.
"""

# --- GenAI conventions -------------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_AGENT_DESCRIPTION = "gen_ai.agent.description"

OP_CHAT = "chat"
OP_INVOKE_AGENT = "invoke_agent"
OP_EXECUTE_TOOL = "execute_tool"


def chat_span_name(model: str | None) -> str:
    return f"{OP_CHAT} {model}" if model else OP_CHAT


def agent_span_name(agent: str | None) -> str:
    return f"{OP_INVOKE_AGENT} {agent}" if agent else OP_INVOKE_AGENT


def tool_span_name(tool: str | None) -> str:
    return f"{OP_EXECUTE_TOOL} {tool}" if tool else OP_EXECUTE_TOOL


# --- Agent Lightning ---------------------------------------------------------------------------
# A hand-over from one agent to another (OpenAI Agents SDK): ``handoff {to_agent}``.
SPAN_HANDOFF = "handoff"
AGL_HANDOFF_FROM = "agl.handoff.from_agent"
AGL_HANDOFF_TO = "agl.handoff.to_agent"
# What an agent could do, recorded on its invoke_agent span when the framework says so.
AGL_AGENT_TOOLS = "agl.agent.tools"
AGL_AGENT_HANDOFFS = "agl.agent.handoffs"
AGL_AGENT_OUTPUT_TYPE = "agl.agent.output_type"


def handoff_span_name(to_agent: str | None) -> str:
    return f"{SPAN_HANDOFF} {to_agent}" if to_agent else SPAN_HANDOFF


AGL_ROLLOUT_ID = "agl.rollout.id"
AGL_ATTEMPT_ID = "agl.attempt.id"
AGL_RESOURCES_ID = "agl.resources.id"
AGL_PROMPT_TOKEN_IDS = "agl.prompt.token_ids"
AGL_RESPONSE_TOKEN_IDS = "agl.response.token_ids"
AGL_RESPONSE_LOGPROBS = "agl.response.logprobs"
AGL_POLICY_VERSION = "agl.policy.version"
# With n > 1 the attributes above hold choice 0; every choice's ids/logprobs are JSON lists here.
AGL_RESPONSE_CHOICES_TOKEN_IDS = "agl.response.choices.token_ids"
AGL_RESPONSE_CHOICES_LOGPROBS = "agl.response.choices.logprobs"

# Span names of the other emitters; each carries its payload in the attribute of the same stem.
SPAN_REWARD = "agl.reward"
AGL_REWARD_VALUE = "agl.reward.value"
AGL_REWARD_NAME = "agl.reward.name"
SPAN_MESSAGE = "agl.message"
AGL_MESSAGE_BODY = "agl.message.body"
SPAN_OBJECT = "agl.object"
AGL_OBJECT_JSON = "agl.object.json"
SPAN_EXCEPTION = "agl.exception"
SPAN_ANNOTATION = "agl.annotation"
AGL_ANNOTATION_PREFIX = "agl.annotation."

#: What `emit_tool_call(context=...)` was given, as JSON on its chat span.
AGL_TOOL_CALL_CONTEXT = "agl.tool_call.context"

# Rollout-level context recorded on the root span of a rollout.
AGL_ROLLOUT_INPUT = "agl.rollout.input"
AGL_ROLLOUT_OUTPUT = "agl.rollout.output"

# Names frameworks write on their native spans, which their plugins read.
GEN_AI_SYSTEM_DEPRECATED = "gen_ai.system"  # autogen-core 0.7; the contract reads gen_ai.provider.name
AF_EXECUTOR_SPAN = "executor.process"  # Agent Framework workflow executors
AF_EXECUTOR_ID = "executor.id"
AF_EXECUTOR_TYPE = "executor.type"

# Span status / exception (OTel's own names, kept here so nobody spells them twice).
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
