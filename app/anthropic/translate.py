"""Anthropic Messages to and from an Ollama chat, as Ollama translates them (``anthropic/anthropic.go``): a request
becomes a ``ChatRequest`` that runs as any other chat, and its replies become a message or a stream of events.
Functions of their input, but for ``MessageEvents``, which keeps a stream's open block."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from app.anthropic.messages import ContentBlock, MessageParam, MessagesRequest, MessagesResponse, Usage
from app.errors import InvalidRequest
from app.ollama import ChatRequest, ChatResponse, FunctionCall, Message, Options, ToolCall, ToolCallOut

__all__ = ["MessageEvents", "estimate_input_tokens", "message_id", "stop_reason", "to_chat_request", "to_message"]

Event = tuple[str, dict[str, Any]]
_encode = msgspec.json.Encoder().encode
_EFFORTS = ("low", "medium", "high", "max")


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def _tool_use_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def to_chat_request(request: MessagesRequest, *, can_think: bool) -> ChatRequest:
    """The chat Ollama runs for ``request``. ``can_think``: whether the model thinks; Ollama relaxes ``thinking``
    on this route (Claude Code asks for it of every model) rather than refusing it."""
    messages: list[Message] = []
    system = _text(request.system) if request.system is not None else ""
    if system:
        messages.append(Message(role="system", content=system))
    for message in request.messages or ():
        messages.extend(_messages(message))
    options = Options(num_predict=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
                      top_k=request.top_k, stop=request.stop_sequences or None)  # fmt: skip
    # Server tools (web search) run at ollama.com in Ollama; here there is nothing to run them, so the model never sees
    # them.
    tools = [_tool(tool) for tool in request.tools or () if not (tool.type or "").startswith("web_search")]
    if request.tool_choice is not None and request.tool_choice.type == "none":
        tools = []  # Anthropic's "none": the model must not call any
    return ChatRequest(model=request.model, messages=messages, tools=tools or None, stream=request.stream is True,
                       options=options, think=_think(request) if can_think else None)  # fmt: skip


def _think(request: MessagesRequest) -> bool | str | None:
    if request.thinking is not None and request.thinking.type in ("enabled", "disabled"):
        return request.thinking.type == "enabled"
    effort = (request.output_config.effort or "") if request.output_config is not None else ""
    effort = effort.strip().lower().replace("xhigh", "high")
    return effort if effort in _EFFORTS else None


def _text(content: str | list[ContentBlock]) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.text for block in content if block.type == "text" and isinstance(block.text, str))


def _image(block: ContentBlock) -> str:
    source = block.source
    if source is None:
        raise InvalidRequest("invalid image source")
    if source.type != "base64":
        raise InvalidRequest(f"invalid image source type: {source.type}. Only base64 images are supported.")
    return source.data or ""


def _messages(message: MessageParam) -> list[Message]:
    """One Anthropic message as Ollama's: its tool results become ``tool`` messages (before a user's text)."""
    role = message.role.lower()
    blocks = [ContentBlock(type="text", text=message.content)] if isinstance(message.content, str) else message.content
    text: list[str] = []
    images: list[str] = []
    calls: list[ToolCall] = []
    thinking = ""
    results: list[Message] = []
    for block in blocks:
        if block.type == "text" and isinstance(block.text, str):
            text.append(block.text)
        elif block.type == "image":
            images.append(_image(block))
        elif block.type in ("tool_use", "server_tool_use"):
            calls.append(_call(block))
        elif block.type == "tool_result":
            results.append(_result(block))
        elif block.type == "thinking" and isinstance(block.thinking, str):
            thinking = block.thinking
    converted = []
    if text or images or calls or thinking:
        converted.append(Message(role=role, content="".join(text), images=images or None, tool_calls=calls or None,
                                 thinking=thinking or None))  # fmt: skip
    return [*results, *converted] if role == "user" else [*converted, *results]


def _call(block: ContentBlock) -> ToolCall:
    if not block.id:
        raise InvalidRequest(f"{block.type} block missing required 'id' field")
    if not block.name:
        raise InvalidRequest(f"{block.type} block missing required 'name' field")
    arguments = block.input if isinstance(block.input, dict) else {}
    return ToolCall(function=FunctionCall(name=str(block.name), arguments=arguments), id=str(block.id))


def _result(block: ContentBlock) -> Message:
    content, images = "", []
    if isinstance(block.content, str):
        content = block.content
    elif isinstance(block.content, list):
        content = _text(block.content)
        images = [_image(part) for part in block.content if part.type == "image"]
    return Message(role="tool", content=content, images=images or None, tool_call_id=block.tool_use_id)


def _tool(tool: Any) -> dict[str, Any]:
    parameters = tool.input_schema if tool.input_schema is not None else {}
    function = {"name": tool.name, "description": tool.description or "", "parameters": parameters}
    return {"type": "function", "function": function}


def stop_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    """Ollama's ``done_reason`` as Anthropic's ``stop_reason``."""
    if tool_calls:
        return "tool_use"
    if done_reason == "stop":
        return "end_turn"
    if done_reason == "length":
        return "max_tokens"
    return "stop_sequence" if done_reason else None


def _tool_block(call: ToolCallOut) -> ContentBlock:
    call_id = call.id if isinstance(call.id, str) and call.id else _tool_use_id()
    return ContentBlock(type="tool_use", id=call_id, name=call.function.name, input=call.function.arguments)


def _counts(reply: ChatResponse) -> Usage:
    prompt = reply.prompt_eval_count if isinstance(reply.prompt_eval_count, int) else 0
    output = reply.eval_count if isinstance(reply.eval_count, int) else 0
    return Usage(input_tokens=prompt, output_tokens=output)


def to_message(message: str, reply: ChatResponse) -> MessagesResponse:
    """A whole chat answer as one Anthropic message: thinking, text, then tool uses."""
    content = []
    said = reply.message
    if isinstance(said.thinking, str) and said.thinking:
        content.append(ContentBlock(type="thinking", thinking=said.thinking))
    if said.content:
        content.append(ContentBlock(type="text", text=said.content))
    calls = said.tool_calls if isinstance(said.tool_calls, list) else []
    content.extend(_tool_block(call) for call in calls)
    done = reply.done_reason if isinstance(reply.done_reason, str) else None
    reason = stop_reason(done, bool(calls))
    response = MessagesResponse(id=message, model=reply.model, content=content, usage=_counts(reply))
    if reason is not None:
        response.stop_reason = reason
    return response


def estimate_input_tokens(request: MessagesRequest) -> int:
    """What ``message_start`` says before the prompt is read: a quarter of the characters, as Ollama estimates."""
    characters = len(_text(request.system)) if request.system is not None else 0
    for message in request.messages or ():
        characters += len(message.role)
        if isinstance(message.content, str):
            characters += len(message.content)
        else:
            characters += sum(_block_size(block) for block in message.content)
    for tool in request.tools or ():
        characters += len(tool.name) + len(tool.description or "") + len(str(tool.input_schema or ""))
    tokens = characters // 4
    return tokens or (1 if request.messages or request.system is not None else 0)


def _block_size(block: ContentBlock) -> int:
    size = len(block.text) if isinstance(block.text, str) else 0
    size += len(block.thinking) if isinstance(block.thinking, str) else 0
    if block.type in ("tool_use", "tool_result"):
        size += len(str(block.input or "")) + len(str(block.content or ""))
    return size


class MessageEvents:
    """A streamed chat's replies as Anthropic's events: ``message_start``, then each content block opened, filled
    by deltas and stopped (thinking, text, one per tool use), then ``message_delta`` and ``message_stop``."""

    def __init__(self, message: str, model: str, estimated_input: int) -> None:
        self._message, self._model, self._estimated = message, model, estimated_input
        self._started = False
        self._index = 0
        self._open: str | None = None  # the kind of the block being written, if one is
        self._thought = False  # a thinking block was closed: later thinking is not reopened
        self._tools = 0

    def events(self, reply: ChatResponse) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._started = True
            prompt = reply.prompt_eval_count if isinstance(reply.prompt_eval_count, int) else 0
            start = MessagesResponse(id=self._message, model=self._model, content=[],
                                     usage=Usage(input_tokens=prompt or self._estimated, output_tokens=0))  # fmt: skip
            out.append(("message_start", {"type": "message_start", "message": start}))
        said = reply.message
        if isinstance(said.thinking, str) and said.thinking and not self._thought:
            self._switch("thinking", out, {"type": "thinking", "thinking": ""})
            out.append(self._delta({"type": "thinking_delta", "thinking": said.thinking}))
        if said.content:
            self._switch("text", out, {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": said.content}))
        for call in said.tool_calls if isinstance(said.tool_calls, list) else ():
            self._close(out)
            block = _tool_block(call)
            opened: dict[str, Any] = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            out.append(("content_block_start", {"type": "content_block_start", "index": self._index,
                                                "content_block": opened}))  # fmt: skip
            out.append(self._delta({"type": "input_json_delta", "partial_json": _json(block.input)}))
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
            self._index += 1
            self._tools += 1
        if reply.done:
            self._close(out)
            done = reply.done_reason if isinstance(reply.done_reason, str) else None
            delta: dict[str, Any] = {}
            if (reason := stop_reason(done, self._tools > 0)) is not None:
                delta["stop_reason"] = reason
            usage = _counts(reply)
            out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
            out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _switch(self, kind: str, out: list[Event], block: dict[str, Any]) -> None:
        if self._open == kind:
            return
        self._close(out)
        self._open = kind
        out.append(("content_block_start", {"type": "content_block_start", "index": self._index,
                                            "content_block": block}))  # fmt: skip

    def _close(self, out: list[Event]) -> None:
        if self._open is None:
            return
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._thought = self._thought or self._open == "thinking"
        self._open = None
        self._index += 1

    def _delta(self, delta: dict[str, Any]) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}


def _json(value: Any) -> str:
    return _encode(value if isinstance(value, dict) else {}).decode()
