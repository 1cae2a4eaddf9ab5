"""A scripted OpenAI-compatible server on 127.0.0.1 for tests: real HTTP, no network.

Each request to ``/v1/chat/completions`` takes the next step of the script (the last step
repeats). A step is a status code, headers, and either a body (dict or raw str), an answer
(a dict the server wraps as a tool call or as message content, matching the request's mode),
or a delay (seconds to sleep before answering, to trigger client timeouts). Every request is
recorded, so tests can assert how many the client sent, what they said, and on which connection.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_extract.llm.views import MAX_QUOTES
from llm_extract.normalize import sentences
from llm_extract.schema import CITATION_FIELDS


@dataclass
class Step:
    status: int = 200
    answer: Any = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: tuple[int, int] = (100, 20)


Responder = Callable[[dict], Step]


class FakeOpenAI:
    """Start with ``with FakeOpenAI([...]) as server:``; ``server.base_url`` ends in /v1."""

    def __init__(self, script: list[Step] | Responder) -> None:
        self.script = script
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next(self, request: dict) -> Step:
        with self._lock:
            self.requests.append(request)
            if callable(self.script):
                return self.script(request)
            index = min(len(self.requests) - 1, len(self.script) - 1)
            return self.script[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do (every answer has a length)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                request["_path"] = self.path
                request["_auth"] = self.headers.get("authorization")
                request["_peer"] = self.client_address  # the client's (host, port): one per connection
                step = server._next(request)
                if step.delay:
                    time.sleep(step.delay)
                payload = step.body if step.body is not None else _completion(request, step)
                data = payload if isinstance(payload, str) else json.dumps(payload)
                try:
                    self.send_response(step.status)
                    self.send_header("content-type", "application/json")
                    for key, value in step.headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(data.encode())))
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _completion(request: dict, step: Step) -> dict:
    """A chat.completion answering ``step.answer`` the way the request asked (tools or content)."""
    if step.status >= 400:
        return {
            "error": {"message": f"scripted error {step.status}", "type": "scripted", "code": step.status}
        }
    answer = step.answer
    content = answer if isinstance(answer, str) else json.dumps(answer)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    finish = "stop"
    tools = request.get("tools")
    if tools:
        name = tools[0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": content}}
            ],
        }
        finish = "tool_calls"
    prompt, completion = step.usage
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


SUMMARY = "The records do not show the findings the guideline requires."


def citation_json(c: Any) -> dict:
    return {"text": c.text, "source": c.source, "title": c.title, "year": c.year, "topic": c.topic, "pages": c.pages}


def item_json(item: Any, **changes: Any) -> dict:
    """A whole-letter answer for one item, copied from a (rules) extraction: what a perfect model
    says (the conclusion copied, then up to the schema's bound of supporting quotes)."""
    data = {
        "item": item.item,
        "decision_word": (item.decision or "").capitalize(),
        "conclusion": item.conclusion.text if item.conclusion else "",
        "decision": item.decision,
        "original_request": item.original_request,
        "authorized": item.authorized,
        "claims_administrator_guideline": [citation_json(c) for c in item.claims_administrator_guideline],
        "maximus_guideline": [citation_json(c) for c in item.maximus_guideline],
        "rationale_summary": SUMMARY,
        "quotes": [{"text": q.text} for q in item.quotes[:MAX_QUOTES]],
    }
    data.update(changes)
    return data


def fill_json(item: Any, text: str, *, brief: bool = False, **changes: Any) -> dict:
    """A per-item answer (ItemFill, or ItemBrief with ``brief``) for a rules item of ``text``: the
    conclusion's sentence number (the last sentence if the item has none) and a reason's."""
    spans = sentences(text, item.rationale.start, item.rationale.end)
    found = (item.conclusion.start, item.conclusion.end) if item.conclusion else None
    number = spans.index(found) + 1 if found in spans else len(spans)
    data: dict[str, Any] = {
        "decision_word": (item.decision or "").capitalize(),
        "conclusion_sentence": number,
        "decision": item.decision,
        "reason_sentence": 1 if number != 1 else min(2, len(spans)),
    }
    if not brief:
        data.update({field: [citation_json(c) for c in getattr(item, field)] for field in CITATION_FIELDS})
        data["rationale_summary"] = SUMMARY
    data.update(changes)
    return data


def answer_from(result: Any, **item_changes: Any) -> dict:
    """A whole-letter answer copied from a Determination, with optional changes to every item."""
    return {
        "case": result.case.model_dump(mode="json"),
        "reviewer": result.reviewer.model_dump(mode="json"),
        "patient": result.patient.model_dump(mode="json"),
        "items": [item_json(i, **item_changes) for i in result.items],
    }
