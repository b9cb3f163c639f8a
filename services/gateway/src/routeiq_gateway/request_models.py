"""What a client may send: the typed request models of every endpoint, mirroring the OpenAI API.

The pydantic models here are the one statement of each body's shape, types and ranges: the
handlers validate with them and ``api/openapi.py`` publishes their JSON schema. Validation is pure
(no I/O): every refusal is a ``BadRequest`` naming the offending field (``errors.invalid``), so
bad input is always a 4xx and nothing is routed, forwarded or logged for it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    WrapValidator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from routeiq_gateway.errors import BadRequest, NotFound, invalid
from routeiq_gateway.upstream import PASSTHROUGH

M = TypeVar("M", bound=BaseModel)

# OpenAI's rule for function and JSON-schema names.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
_INT32 = 2**31 - 1


def _expecting(what: str) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """Any failure inside a field reported as one "must be <what>": the client gets the field's
    whole rule (both bounds, every allowed shape), not the first check that failed."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("expected", "must be {what}", {"what": what}) from None

    return check


def _expect(what: str) -> WrapValidator:
    return WrapValidator(_expecting(what))


@dataclass(frozen=True, slots=True)
class Bounded:
    """``Annotated[float, Bounded(0, 2)]``: a finite JSON number in [low, high] (``high`` None:
    no upper bound); on ``int``, a JSON integer (``1.0`` and ``true`` are not). The range is
    written once: it bounds validation, the JSON schema and the error message."""

    low: float
    high: float | None = None

    def __get_pydantic_core_schema__(self, source: Any, _: GetCoreSchemaHandler) -> CoreSchema:
        inner: CoreSchema
        if source is int:
            low, high = int(self.low), None if self.high is None else int(self.high)
            inner = core_schema.int_schema(ge=low, le=high, strict=True)
            what = f"an integer in [{low}, {high}]"
        else:
            inner = core_schema.float_schema(
                ge=self.low, le=self.high, allow_inf_nan=False, strict=True
            )
            what = (
                f"a number in [{self.low:g}, {self.high:g}]"
                if self.high is not None
                else f"a finite number >= {self.low:g}"
            )
        return core_schema.no_info_wrap_validator_function(_expecting(what), inner)


class Model(BaseModel):
    # Strict: "1" is not a number, 1 is not a boolean, 1.0 is not an integer, as at OpenAI.
    # Extra keys pass unless a model says otherwise: OpenAI adds fields faster than we do.
    model_config = ConfigDict(strict=True, extra="allow")


class Closed(Model):
    # RouteIQ's own bodies: a misspelt field is refused, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class ImageUrl(Model):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class InputAudio(Model):
    data: str
    format: Literal["wav", "mp3"]


class FileRef(Model):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class TextPart(Model):
    type: Literal["text"]
    text: str


class ImagePart(Model):
    type: Literal["image_url"]
    image_url: ImageUrl


class AudioPart(Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(Model):
    type: Literal["file"]
    file: FileRef


class RefusalPart(Model):
    type: Literal["refusal"]
    refusal: str


class FunctionCall(Model):
    name: str
    arguments: str


class ToolCall(Model):
    id: str
    type: Literal["function"]
    function: FunctionCall


# Which content parts each role may send, as OpenAI (and LiteLLM, before any provider) rules:
# a refusal part from a user was a 502 after retries, not a 400.
UserPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Discriminator("type")]
AssistantPart = Annotated[TextPart | RefusalPart, Discriminator("type")]


class SystemMessage(Model):
    role: Literal["system", "developer"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class UserMessage(Model):
    role: Literal["user"]
    content: str | list[UserPart] | None = None
    name: str | None = None


class AssistantMessage(Model):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ToolMessage(Model):
    role: Literal["tool"]
    content: str | list[TextPart] | None = None
    tool_call_id: str


class FunctionMessage(Model):
    role: Literal["function"]
    content: str | None = None
    name: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Discriminator("role"),
]


class FunctionDefinition(Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Model):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(Model):
    name: str = Field(pattern=NAME_PATTERN)


class NamedToolChoice(Model):
    type: Literal["function"]
    function: FunctionName


class JsonSchemaFormat(Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(Model):
    type: Literal["text"]


class JsonObjectFormat(Model):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(Model):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


class StreamOptions(Model):
    include_usage: bool | None = None


class ChatCompletionRequest(Model):
    """``POST /v1/chat/completions``: OpenAI's body. ``model`` may be a routing alias
    (``auto``) or a model group; the fields RouteIQ does not forward are accepted and ignored,
    as before."""

    model: str = Field(default="auto", min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    temperature: Annotated[float, Bounded(0, 2)] | None = None
    top_p: Annotated[float, Bounded(0, 1)] | None = None
    presence_penalty: Annotated[float, Bounded(-2, 2)] | None = None
    frequency_penalty: Annotated[float, Bounded(-2, 2)] | None = None
    n: Annotated[int, Bounded(1, 128)] | None = None
    max_tokens: Annotated[int, Bounded(1, _INT32)] | None = None
    max_completion_tokens: Annotated[int, Bounded(1, _INT32)] | None = None
    seed: Annotated[int, Bounded(-(2**63), 2**63 - 1)] | None = None
    top_logprobs: Annotated[int, Bounded(0, 20)] | None = None
    logprobs: bool | None = None
    parallel_tool_calls: bool | None = None
    stop: (
        Annotated[
            str | Annotated[list[str], Field(min_length=1, max_length=4)],
            _expect("a string or an array of 1-4 strings"),
        ]
        | None
    ) = None
    logit_bias: (
        Annotated[
            dict[str, Annotated[float, Bounded(-100, 100)]],
            _expect("a map of token ids to numbers in [-100, 100]"),
        ]
        | None
    ) = None
    tools: list[FunctionTool] | None = None
    tool_choice: (
        Annotated[
            Literal["none", "auto", "required"] | NamedToolChoice,
            _expect("one of ['auto', 'none', 'required'] or a named function"),
        ]
        | None
    ) = None
    response_format: (
        Annotated[TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Discriminator("type")]
        | None
    ) = None
    stream_options: StreamOptions | None = None
    user: str | None = None


class FeedbackBody(Closed):
    """``POST /v1/feedback``: a score for an earlier decision (what ``Feedback`` records)."""

    decision_id: str = Field(min_length=1, description="the x-routeiq-decision-id header")
    score: Annotated[float, Bounded(0, 1)]
    source: str = Field(pattern=r"^[a-zA-Z0-9._:-]{1,64}$")
    candidate: str | None = Field(default=None, description="a model group of this gateway")
    judge_model: str | None = None
    cost_usd: Annotated[float, Bounded(0)] | None = None
    latency_ms: Annotated[float, Bounded(0)] | None = None


# What the gateway publishes from: the validated body itself.
FeedbackRequest = FeedbackBody


def parse(model: type[M], data: Any) -> M:
    """``data`` validated by ``model``, or the ``BadRequest`` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, data) from None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion: what to route on and what to pass upstream."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream: bool
    text: str  # the last user message: what RouteIQ routes on (never logged)
    user: str | None
    team: str | None
    domain: str | None


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text RouteIQ routes on: the last user message (string or text parts)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
    return ""


def parse_chat_request(body: Mapping[str, Any], headers: Mapping[str, str]) -> ChatRequest:
    """A chat-completion body and RouteIQ's ``x-routeiq-*`` headers, validated."""
    if body.get("messages") is None:
        raise BadRequest("'messages' is required", param="messages", code="missing_messages")
    request = parse(ChatCompletionRequest, body)
    # What goes upstream is the client's own JSON (validated above), not a re-serialisation:
    # the fields OpenAI added after these models pass through unchanged.
    messages: list[dict[str, Any]] = body["messages"]
    return ChatRequest(
        model=request.model,
        messages=messages,
        params={k: v for k, v in body.items() if k in PASSTHROUGH},
        stream=request.stream,
        text=last_user_text(messages),
        user=headers.get("x-routeiq-user") or request.user,
        team=headers.get("x-routeiq-team") or None,
        domain=headers.get("x-routeiq-domain") or None,
    )


def parse_feedback(
    body: Mapping[str, Any],
    *,
    check_decision_id: Callable[[str], str | None],
    groups: Collection[str],
) -> FeedbackBody:
    """A feedback body, validated; ``check_decision_id`` says why an id is not ours (or None)."""
    request = parse(FeedbackBody, body)
    why = check_decision_id(request.decision_id)
    if why is not None:
        raise NotFound(
            f"{why}: {request.decision_id!r}", param="decision_id", code="decision_not_found"
        )
    if request.candidate is not None and request.candidate not in groups:
        raise BadRequest(
            f"'candidate' {request.candidate!r} is not a model group here ({list(groups)})",
            param="candidate",
        )
    return request
