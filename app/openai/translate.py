"""OpenAI Responses to and from an Ollama chat, as Ollama translates them (``openai/responses.go``): a request becomes
a ``ChatRequest`` that runs as any other chat, and its replies become a response object or its stream of events.
Functions of their input, but for ``ResponseEvents``, which keeps a stream's items and sequence numbers."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

import msgspec

from app.errors import InvalidRequest, ProxyError, truncate
from app.ollama import ChatRequest, ChatResponse, FunctionCall, Message, Options, ToolCall, ToolCallOut
from app.openai.responses import (
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputMessage,
    ReasoningItem,
    ResponsesRequest,
    ResponsesTool,
)

__all__ = ["ResponseEvents", "response_id", "to_chat_request", "to_response"]

Event = tuple[str, dict[str, Any]]
_encode = msgspec.json.Encoder().encode
_ITEMS: dict[str, type[Any]] = {"message": InputMessage, "function_call": FunctionCallItem,
                                "function_call_output": FunctionCallOutputItem, "reasoning": ReasoningItem}  # fmt: skip
_EFFORTS: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                                   "high": "high", "max": "max", "xhigh": "max", "ultra": "max"}  # fmt: skip
_IMAGE_PREFIXES = ("data:;base64,", *(f"data:image/{kind};base64," for kind in ("jpeg", "jpg", "png", "webp")))


def response_id() -> str:
    return "resp_" + secrets.token_hex(12)


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def to_chat_request(request: ResponsesRequest) -> ChatRequest:
    """The chat Ollama runs for ``request``."""
    if request.previous_response_id:
        # Ollama ignores it, and the conversation it names would be lost without a word: say so instead.
        raise InvalidRequest("previous_response_id is not supported: responses are not stored, so send the whole "
                             "conversation in input")  # fmt: skip
    messages: list[Message] = []
    if request.instructions:
        messages.append(Message(role="system", content=request.instructions))
    if isinstance(request.input, str):
        if request.input:
            messages.append(Message(role="user", content=request.input))
    else:
        messages.extend(_conversation([_item(index, raw) for index, raw in enumerate(request.input or ())]))
    # Ollama's defaults on this route: OpenAI's temperature of 1.0, the model's own top_p.
    options = Options(temperature=1.0 if request.temperature is None else request.temperature, top_p=request.top_p,
                      num_predict=request.max_output_tokens)  # fmt: skip
    tools = [tool for given in request.tools or () for tool in _tools(given)]
    if request.tool_choice == "none":
        tools = []
    schema = None
    if request.text is not None and request.text.format is not None and request.text.format.type == "json_schema":
        schema = request.text.format.schema
    return ChatRequest(model=request.model, messages=messages, options=options, tools=tools or None, format=schema,
                       think=_think(request), stream=request.stream is True)  # fmt: skip


def _think(request: ResponsesRequest) -> bool | str | None:
    effort = request.reasoning.effort if request.reasoning is not None else None
    if not effort:
        return None
    if effort not in _EFFORTS:
        raise InvalidRequest(f'invalid reasoning value: {_quoted(effort)} (must be "minimal", "low", "medium", '
                             '"high", "xhigh", "ultra", "max", or "none")')  # fmt: skip
    return _EFFORTS[effort]


def _quoted(text: str) -> str:
    """As Go's ``%q`` quotes it (Ollama's messages do), cut to a readable length."""
    return _encode(truncate(text, 64)).decode()


def _item(index: int, raw: dict[str, Any]) -> Any:
    kind = raw.get("type") or ("message" if raw.get("role") else "")
    if not kind:
        raise InvalidRequest(f"input[{index}]: input item missing required 'type' field")
    if not isinstance(kind, str) or kind not in _ITEMS:
        raise InvalidRequest(f"input[{index}]: unknown input item type: {_quoted(str(kind))}")
    try:
        return msgspec.convert(raw, _ITEMS[kind])
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"input[{index}]: {exc}") from None


def _conversation(items: list[Any]) -> list[Message]:
    """Items in order as Ollama's messages: function calls join the assistant message before them, a reasoning
    item's text becomes the next assistant message's thinking."""
    messages: list[Message] = []
    thinking = ""
    for index, item in enumerate(items):
        if isinstance(item, ReasoningItem):
            thinking = item.encrypted_content or ""
        elif isinstance(item, InputMessage):
            content, images = _content(item.content)
            # OpenAI's "developer" is what its older models called "system" (Codex sends its instructions so).
            role = "system" if item.role == "developer" else item.role
            message = Message(role=role, content=content, images=images or None)
            if item.role == "assistant" and thinking:
                message.thinking, thinking = thinking, ""
            answered = items[index + 1].call_id if index + 1 < len(items) and isinstance(
                items[index + 1], FunctionCallOutputItem) else ""  # fmt: skip
            last = messages[-1] if messages else None
            if item.role == "assistant" and answered and last is not None and last.role == "assistant" and any(
                    call.id == answered for call in last.tool_calls or ()):  # fmt: skip
                # An assistant message replayed between a call and its output stays in the call's message.
                last.content = "\n".join(part for part in (last.content, content) if part)
                continue
            messages.append(message)
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(function=FunctionCall(name=item.name, arguments=_arguments(item.arguments)),
                            id=item.call_id)  # fmt: skip
            if messages and messages[-1].role == "assistant":
                messages[-1].tool_calls = [*(messages[-1].tool_calls or ()), call]
                if thinking:
                    messages[-1].thinking, thinking = thinking, ""
            else:
                messages.append(Message(role="assistant", tool_calls=[call], thinking=thinking or None))
                thinking = ""
        elif isinstance(item, FunctionCallOutputItem):
            content, images = _content(item.output)
            messages.append(Message(role="tool", content=content, images=images or None, tool_call_id=item.call_id))
    if thinking:
        messages.append(Message(role="assistant", thinking=thinking))
    return messages


def _arguments(arguments: str) -> dict[str, Any]:
    if not arguments:
        return {}
    try:
        decoded = msgspec.json.decode(arguments)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"failed to parse function call arguments: {exc}") from None
    if not isinstance(decoded, dict):
        raise InvalidRequest("failed to parse function call arguments: not a JSON object")
    return decoded


def _content(content: str | list[ContentPart] | None) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    text, images = [], []
    for part in content:
        if part.type in ("input_text", "output_text"):
            text.append(part.text)
        elif part.type == "input_image" and part.image_url:
            images.append(_image(part.image_url))
        elif part.type == "input_file":
            raise InvalidRequest("file inputs are not currently supported")
    return "".join(text), images


def _image(url: str) -> str:
    if url.startswith(("http://", "https://")):
        raise InvalidRequest("image URLs are not currently supported, please use base64 encoded data instead")
    prefix = next((prefix for prefix in _IMAGE_PREFIXES if url.startswith(prefix)), None)
    if prefix is None:
        raise InvalidRequest("invalid image input")
    data = url[len(prefix) :]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("invalid image input") from None
    return data


def _tools(tool: ResponsesTool, prefix: str = "") -> list[dict[str, Any]]:
    if tool.type == "web_search":
        return []  # Ollama runs the search through ollama.com; here there is none to run (Codex sends it by default)
    if tool.type == "namespace":
        inner = f"{prefix}{tool.name}." if tool.name else prefix
        return [converted for member in tool.tools or () for converted in _tools(member, inner)]
    name = tool.name if not prefix or tool.name.startswith(prefix) else prefix + tool.name
    function = {"name": name, "description": tool.description or "", "parameters": tool.parameters or {}}
    return [{"type": "function", "function": function}]


def _calls(reply: ChatResponse) -> list[ToolCallOut]:
    return reply.message.tool_calls if isinstance(reply.message.tool_calls, list) else []


def _thinking(reply: ChatResponse) -> str:
    return reply.message.thinking if isinstance(reply.message.thinking, str) else ""


def _function_call(call: ToolCallOut, item: str, status: str = "completed") -> dict[str, Any]:
    call_id = call.id if isinstance(call.id, str) and call.id else _item_id("call")
    arguments = _encode(call.function.arguments).decode()
    return {"id": item, "type": "function_call", "status": status, "call_id": call_id, "name": call.function.name,
            "arguments": arguments}  # fmt: skip


def _message(item: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item, "type": "message", "status": status, "role": "assistant", "content": [part]}


def _reasoning(item: str, text: str) -> dict[str, Any]:
    return {"id": item, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": text}  # fmt: skip


def _usage(reply: ChatResponse) -> dict[str, Any]:
    prompt = reply.prompt_eval_count if isinstance(reply.prompt_eval_count, int) else 0
    output = reply.eval_count if isinstance(reply.eval_count, int) else 0
    return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip


def _envelope(request: ResponsesRequest, model: str, response: str, status: str) -> dict[str, Any]:
    """The response object's fields that echo the request, as Ollama fills them."""
    reasoning = None
    if request.reasoning is not None and (request.reasoning.effort or request.reasoning.summary):
        reasoning = {"effort": request.reasoning.effort, "summary": request.reasoning.summary}
    text_format: dict[str, Any] = {"type": "text"}
    if request.text is not None and request.text.format is not None:
        text_format = msgspec.to_builtins(request.text.format)
        text_format = {key: value for key, value in text_format.items() if value is not None}
    tools = [msgspec.to_builtins(tool) for tool in request.tools or ()]
    return {
        "id": response, "object": "response", "created_at": int(time.time()), "completed_at": None, "status": status,
        "incomplete_details": None, "model": model, "previous_response_id": None,
        "instructions": request.instructions or None, "output": [], "error": None, "tools": tools,
        "tool_choice": "auto", "truncation": request.truncation or "disabled", "parallel_tool_calls": True,
        "text": {"format": text_format}, "top_p": 1.0 if request.top_p is None else request.top_p,
        "presence_penalty": 0, "frequency_penalty": 0, "top_logprobs": 0,
        "temperature": 1.0 if request.temperature is None else request.temperature, "reasoning": reasoning,
        "usage": None, "max_output_tokens": request.max_output_tokens, "max_tool_calls": None, "store": False,
        "background": request.background is True, "service_tier": "default", "metadata": {},
        "safety_identifier": None, "prompt_cache_key": None,
    }  # fmt: skip


def to_response(request: ResponsesRequest, response: str, reply: ChatResponse) -> dict[str, Any]:
    """A whole chat answer as one response object: reasoning, then function calls or the message."""
    output: list[dict[str, Any]] = []
    if thinking := _thinking(reply):
        output.append(_reasoning(f"rs_{response}", thinking))
    if calls := _calls(reply):
        output.extend(_function_call(call, f"fc_{response}_{index}") for index, call in enumerate(calls))
    else:
        output.append(_message(_item_id("msg"), reply.message.content))
    answer = _envelope(request, request.model, response, "completed")
    answer.update(output=output, usage=_usage(reply), completed_at=int(time.time()))
    return answer


class ResponseEvents:
    """A streamed chat's replies as the Responses API's events, each with its ``sequence_number``:
    ``response.created`` and ``response.in_progress``; a reasoning item, function-call items or one message item,
    each added, filled by deltas and done; then ``response.completed``."""

    def __init__(self, request: ResponsesRequest, response: str) -> None:
        self._request, self._response = request, response
        self._sequence = 0
        self._started = False
        self._index = 0  # the output index of the next item
        self._done: list[dict[str, Any]] = []  # items completed, in order
        self._reasoning: tuple[str, list[str]] | None = None  # the open reasoning item: its id and text
        self._text: tuple[str, list[str]] | None = None  # the open message item: its id and text
        self._called = False  # function calls were sent: text that follows is not

    def events(self, reply: ChatResponse) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._started = True
            for kind in ("response.created", "response.in_progress"):
                out.append(self._event(kind, response=_envelope(self._request, self._request.model, self._response,
                                                                "in_progress")))  # fmt: skip
        if thinking := _thinking(reply):
            if self._reasoning is None:
                self._reasoning = (_item_id("rs"), [])
                item = {"id": self._reasoning[0], "type": "reasoning", "summary": []}
                out.append(self._event("response.output_item.added", output_index=self._index, item=item))
            self._reasoning[1].append(thinking)
            out.append(self._event("response.reasoning_summary_text.delta", item_id=self._reasoning[0],
                                   output_index=self._index, summary_index=0, delta=thinking))  # fmt: skip
        if calls := _calls(reply):
            out.extend(self._finish_reasoning())
            for call in calls:
                item = _function_call(call, _item_id("fc"))
                added = {**item, "status": "in_progress", "arguments": ""}
                out.append(self._event("response.output_item.added", output_index=self._index, item=added))
                out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=self._index, delta=item["arguments"]))  # fmt: skip
                out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                       output_index=self._index, arguments=item["arguments"]))  # fmt: skip
                out.append(self._event("response.output_item.done", output_index=self._index, item=item))
                self._done.append(item)
                self._index += 1
            self._called = True
        elif reply.message.content and not self._called:
            out.extend(self._finish_reasoning())
            if self._text is None:
                self._text = (_item_id("msg"), [])
                item = {**_message(self._text[0], "", "in_progress"), "content": []}
                out.append(self._event("response.output_item.added", output_index=self._index, item=item))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out.append(self._event("response.content_part.added", item_id=self._text[0], output_index=self._index,
                                       content_index=0, part=part))  # fmt: skip
            self._text[1].append(reply.message.content)
            out.append(self._event("response.output_text.delta", item_id=self._text[0], output_index=self._index,
                                   content_index=0, delta=reply.message.content, logprobs=[]))  # fmt: skip
        if reply.done:
            out.extend(self._finish_reasoning())
            out.extend(self._finish_text())
            response = _envelope(self._request, self._request.model, self._response, "completed")
            response.update(output=self._done, usage=_usage(reply), completed_at=int(time.time()))
            out.append(self._event("response.completed", response=response))
        return out

    def failed(self, exc: ProxyError) -> Event:
        """The stream's own error event, after which it ends."""
        return self._event("error", code=exc.error_type, message=truncate(exc.message), param=None)

    def _finish_reasoning(self) -> list[Event]:
        if self._reasoning is None:
            return []
        item_id, parts = self._reasoning
        self._reasoning = None
        text = "".join(parts)
        item = _reasoning(item_id, text)
        self._done.append(item)
        index, self._index = self._index, self._index + 1
        return [self._event("response.reasoning_summary_text.done", item_id=item_id, output_index=index,
                            summary_index=0, text=text),
                self._event("response.output_item.done", output_index=index, item=item)]  # fmt: skip

    def _finish_text(self) -> list[Event]:
        if self._text is None:
            return []
        item_id, parts = self._text
        self._text = None
        text = "".join(parts)
        item = _message(item_id, text)
        self._done.append(item)
        index, self._index = self._index, self._index + 1
        part = item["content"][0]
        return [self._event("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
                            text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=item_id, output_index=index, content_index=0,
                            part=part),
                self._event("response.output_item.done", output_index=index, item=item)]  # fmt: skip

    def _event(self, kind: str, **data: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return kind, event
