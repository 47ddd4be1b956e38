"""A small OpenAI-compatible streaming server on 127.0.0.1 that emits tokens with known delays.

The first token leaves `ttft` seconds after the request arrives, then one token every `itl` seconds. A model
named "broken" answers HTTP 500; prompts containing "FAIL" get HTTP 400, prompts containing "SLOW_TTFT" wait
`slow_s` more for their first token and prompts containing "SLOW_ITL" get `slow_itl` between tokens (planted slow
requests, for goodput). It records the most requests in flight; with `hold=N` a request waits (up to
`HOLD_TIMEOUT_S`) until N are in flight before it answers, so a client that keeps N requests open shows N however
slow the machine, and one that does not shows fewer. `backlog` and `accept_delay` make it a server that accepts
connections slowly behind a small accept backlog (see `_Server`); `idle_timeout` closes a connection that sends no
request for that many seconds, as uvicorn's keep-alive timeout does in the OpenAI servers NIM runs (5 s there).

The benchmark client's stand-in for NIM: tests/test_client.py checks the client against it, and
tools/client_overhead.py and tools/bench.py (`make bench`) measure the client with it. It lives in tools/, beside
the other harness the tests and the commands share (mockrun), rather than in client/: the client ships to users,
this never does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    """A server slow to accept behind a small accept backlog: how a burst of connections loses a second.

    `listen(backlog)` lets the kernel queue about `backlog` connections the server has not accepted yet (Linux:
    backlog + 1). While that queue is full, Linux drops a new connection's SYN rather than refuse it, and the
    client's TCP sends it again only after its initial retransmission timeout, 1 s (RFC 6298 2.1; Linux's
    TCP_TIMEOUT_INIT; the drop: tcp_conn_request in net/ipv4/tcp_input.c, `sk_acceptq_is_full` then `drop`, counted
    in ListenOverflows/ListenDrops; written up at michal-drozd.com/en/blog/tcpdump-syn-no-accept-backlog-trap). A
    client that opens 16 connections at once against a server that takes a moment per accept so gets the first ~10
    through and the rest about a second later: the issue's 7 of 64 requests that waited ~1 s at concurrency 16 were
    the connections of the first burst that did not fit. Measured here (backlog 8, 20 ms per accept, 64 requests at
    concurrency 16, cold): 6 connects of ~1.02 s and no failures. The delay before each accept stands in for a busy
    server's accept loop (the loopback would otherwise accept faster than any burst). A backlog under ~8 also
    shrinks the SYN queue until the kernel answers with SYN cookies (`net.ipv4.tcp_syncookies=1`, the default), and
    a cookie connection whose ACK met a full accept queue is later reset (TcpExtSyncookiesFailed, TcpOutRsts):
    failed requests instead of slow ones, which is not what the issue saw.
    """
    daemon_threads = True
    accept_delay = 0.0

    def get_request(self):
        time.sleep(self.accept_delay)
        return super().get_request()


class FakeServer:
    HOLD_TIMEOUT_S = 10.0

    def __init__(self, ttft: float = 0.2, itl: float = 0.02, tokens: int = 10, usage: bool = True, hold: int = 0,
                 api_key: str | None = None, backlog: int | None = None, accept_delay: float = 0.0,
                 slow_s: float = 1.0, slow_itl: float = 0.1, idle_timeout: float | None = None):
        self.idle_timeout = idle_timeout
        self.ttft, self.itl, self.tokens, self.usage, self.hold = ttft, itl, tokens, usage, hold
        self.slow_s, self.slow_itl = slow_s, slow_itl
        # with a key, it answers as the gateway does without one: 401, text/plain "Client authentication failed."
        self.api_key = api_key
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self._lock = threading.Condition()
        self.httpd = _Server(("127.0.0.1", 0), self._handler(), bind_and_activate=False)
        if backlog is not None:
            self.httpd.request_queue_size = backlog  # listen()'s backlog (socketserver's default: 5)
        self.httpd.accept_delay = accept_delay
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # the socket timeout of StreamRequestHandler: a connection with no next request by then is closed
            # (handle_one_request ends it on the timeout); None waits for ever
            timeout = server.idle_timeout

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # small SSE writes must leave at once (Nagle + delayed ACK would add ~40 ms to each request)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> bool:
                """As Envoy's API key filter: the key from `Authorization: Bearer` or `x-api-key`, else 401."""
                if server.api_key is None:
                    return False
                sent = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
                if sent == server.api_key:
                    return False
                data = b"Client authentication failed."
                self.send_response(401)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True

            def do_GET(self):
                if self._refused():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": "meta/llama3-8b-instruct", "object": "model",
                                                                 "created": 0, "owned_by": "nim"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self._refused():
                    return
                chat = self.path.endswith("/chat/completions")
                prompt = body["messages"][-1]["content"] if chat else body.get("prompt", "")
                if body.get("model") == "broken":
                    return self._json(500, {"error": {"message": "model crashed", "type": "internal"}})
                if "FAIL" in prompt:
                    return self._json(400, {"error": {"message": "bad prompt", "type": "invalid_request_error"}})
                with server._lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server._lock.notify_all()
                    server._lock.wait_for(lambda: server.in_flight >= server.hold, timeout=server.HOLD_TIMEOUT_S)
                try:
                    self._stream(body, chat, prompt)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _stream(self, body: dict, chat: bool, prompt: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                count = min(server.tokens, body.get("max_tokens") or server.tokens)
                time.sleep(server.ttft + (server.slow_s if "SLOW_TTFT" in prompt else 0.0))
                itl = server.slow_itl if "SLOW_ITL" in prompt else server.itl
                for i in range(count):
                    if i:
                        time.sleep(itl)
                    piece = f"tok{i} "
                    choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                              else {"index": 0, "text": piece, "finish_reason": None})
                    self._event({"id": "x", "object": "chat.completion.chunk" if chat else "text_completion",
                                 "created": 0, "model": body["model"], "choices": [choice]})
                if server.usage:
                    self._event({"id": "x", "object": "chat.completion.chunk" if chat else "text_completion",
                                 "created": 0, "model": body["model"], "choices": [],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count}})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _event(self, payload: dict) -> None:
                self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler
