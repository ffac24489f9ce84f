"""``GET /v1/realtime``: the Realtime API's WebSocket, one ``RealtimeSession`` per socket.

The upgrade is authenticated as any request (``Authorization: Bearer``, the tenant from the
host), and a model named in the URL (``?model=``) is checked against the key's scope: a refusal
is a proper HTTP error (401, 403) before any WebSocket. Then:

- Client events are read one at a time, in order. A bad one gets an ``error`` event, and the
  session goes on; nothing a client sends ends it but closing it (or a message past
  ``SOCKET_MAX_MESSAGE``, which the socket layer refuses with 1009 unread).
- Each ``response.create`` is one request through the pipeline (``edge.api.dispatch``): the key
  authenticated again (a key revoked or expired since ends the session), its scope, the checks
  every dialect shares, admission, a lease, OPEN and the first event with failover, and the
  admission settled with what was used; audited as ``WS /v1/realtime response.create``, with
  the socket's request id and the response's number (``req_….1``, ``req_….2``). It runs
  as a task while events are still read, so ``response.cancel`` can stop it, as does a client
  that goes away: either closes the stream, which sends CANCEL through the tunnel.
- The conversation lives in the session's memory (``conversation.Conversation``) and goes with
  it. The socket itself is audited as ``GET /v1/realtime`` (101, the session's duration).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from edge.api import dispatch
from edge.api.dialect import Call
from edge.api.models import visible_models
from edge.api.realtime import events, render, turn
from edge.api.realtime.conversation import Conversation, Item, new_id
from edge.api.realtime.errors import EventError, invalid
from edge.api.realtime.render import Event, ResponseRenderer
from edge.api.realtime.settings import Settings, check_model
from edge.audit import RequestRecord
from edge.auth import RECORD, Caller, authenticate
from edge.bodies import heavy_work
from edge.context import CONTEXT
from edge.errors import ApiError
from edge.observability.logs import current_request
from protocol import Delta, End

log = logging.getLogger(__name__)

HEARTBEAT = 20.0  # seconds between pings; a peer that answers none within half of it is dropped
CLOSE_TIMEOUT = 2.0  # how long a closing socket waits for the client's close frame
CLIENT_CANCELLED = "client_cancelled"  # response.cancel
CLIENT_CLOSED = "client_closed"  # the socket closed under a response


SOCKETS = web.AppKey("llmtunnel_realtime_sockets", set[web.WebSocketResponse])


def install(app: web.Application) -> None:
    """Ready ``app`` (the one whose routes serve ``serve``) for realtime sockets: on shutdown,
    after the agents drained (responses in flight had their time), each socket still open is
    closed with 1001, rather than left to aiohttp's shutdown timeout and cut without a word."""
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_sockets)


async def _close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    closing = [
        ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for ws in sockets
    ]
    await asyncio.gather(*closing, return_exceptions=True)


async def serve(request: web.Request) -> web.StreamResponse:
    caller = await authenticate(request)
    if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
        # The beta's events have other names (response.text.delta, conversation.item.created…):
        # served as they are, its client would wait for events that never come.
        raise ApiError(
            400,
            "realtime_beta_not_supported",
            "this server speaks the Realtime API as released (response.output_text.delta, "
            "conversation.item.added…), not its beta: connect without `OpenAI-Beta: "
            "realtime=v1` (the OpenAI SDK's client.realtime.connect, not client.beta.realtime)",
        )
    model = request.query.get("model") or None
    if model is not None:
        try:
            check_model(model, "model")
        except EventError as exc:
            raise ApiError(400, exc.code, exc.message, param="model") from None
        caller.ensure_model_allowed(model)
        caller.record.model = model
    ws = web.WebSocketResponse(
        max_msg_size=events.SOCKET_MAX_MESSAGE,
        compress=False,
        heartbeat=HEARTBEAT,
        timeout=CLOSE_TIMEOUT,
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(
            400,
            "websocket_required",
            f"{request.path} is a WebSocket endpoint: connect with a WebSocket client, such as "
            "the OpenAI SDK's client.realtime.connect(model=…)",
        )
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        await RealtimeSession(request, ws, caller, Settings(model=model)).run()
    finally:
        sockets.discard(ws)
    return ws


@dataclass(slots=True)
class _Running:
    """The response in progress: the one ``response.cancel`` stops."""

    id: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None


@dataclass(slots=True)
class _Turn:
    """A response ready to run: through the pipeline with ``call`` and ``prepared``."""

    call: Call[turn.Turn]
    prepared: dispatch.Prepared
    renderer: ResponseRenderer
    event_id: str | None
    running: _Running = field(init=False)


class RealtimeSession:
    """One socket's session: its settings, its conversation, at most one response at a time."""

    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, caller: Caller, settings: Settings
    ) -> None:
        self.request = request
        self.ws = ws
        self.ctx = request.config_dict[CONTEXT]
        self.caller = caller  # as of the upgrade; each response authenticates again
        self.settings = settings
        self.id = new_id("sess_")
        self.conversation_id = new_id("conv_")
        self.conversation = Conversation()
        self.active: _Running | None = None
        self._task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._socket_record = caller.record
        self._responses = 0  # response.create events served, which number their request ids

    async def run(self) -> None:
        try:
            await self._send([self._session_event("session.created")])
            async for message in self.ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break  # ERROR: the socket layer closed it (a message past its limit: 1009)
                await self._handle(message.data)
        finally:
            await self._stop()
            self.request[RECORD] = self._socket_record

    # -- client events

    async def _handle(self, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        try:
            event = await self._parse(raw)
            try:
                await self._serve(event)
            except EventError as exc:
                exc.event_id = exc.event_id or event.event_id
                raise
        except EventError as exc:
            await self._send([render.error_event(exc)])
        except Exception:
            log.exception("realtime: unexpected error serving a client event")
            error = EventError(
                "internal_error", "internal error; it has been logged", kind="server_error"
            )
            await self._send([render.error_event(error)])

    async def _parse(self, raw: bytes) -> events.ClientEvent:
        if len(raw) > events.MAX_EVENT_BYTES:
            return events.parse(raw)  # refused unread
        try:
            # A large event is parsed in turn with other large bodies (edge/bodies.py).
            async with heavy_work(self.request, raw):
                return events.parse(raw)
        except ApiError as exc:  # 429: this key has too many large bodies waiting
            raise EventError.from_api(exc) from None

    async def _serve(self, event: events.ClientEvent) -> None:
        if isinstance(event, events.SessionUpdate):
            model = event.changes.get("model")
            if model is not None:
                self._allow(model)
            self.settings = self.settings.updated(event.changes)
            await self._send([self._session_event("session.updated")])
        elif isinstance(event, events.ItemCreate):
            previous = self.conversation.add(event.item, event.previous_item_id)
            item = event.item
            await self._send(
                [
                    render.event("conversation.item.added", previous_item_id=previous, item=item),
                    render.event("conversation.item.done", previous_item_id=previous, item=item),
                ]
            )
        elif isinstance(event, events.ItemDelete):
            self.conversation.delete(event.item_id)
            await self._send([render.event("conversation.item.deleted", item_id=event.item_id)])
        elif isinstance(event, events.ItemRetrieve):
            await self._send(
                [render.event("conversation.item.retrieved", item=self._item(event.item_id))]
            )
        elif isinstance(event, events.ResponseCreate):
            await self._create(event)
        else:
            self._cancel(event)

    def _session_event(self, kind: str) -> Event:
        return render.event(kind, session=render.session(self.id, self.settings))

    def _allow(self, model: str) -> None:
        try:
            self.caller.ensure_model_allowed(model)
        except ApiError as exc:
            raise EventError.from_api(exc) from None

    def _item(self, item_id: str, param: str = "item_id") -> Item:
        item = self.conversation.get(item_id)
        if item is None:
            raise invalid(
                f"no item with id {item_id!r} in the conversation", param, "item_not_found"
            )
        return item

    # -- responses

    async def _create(self, event: events.ResponseCreate) -> None:
        if self.active is not None:
            raise EventError(
                "conversation_already_has_active_response",
                f"the conversation already has a response in progress ({self.active.id}): wait "
                "for its response.done, or cancel it with response.cancel",
            )
        settings = self.settings.updated(event.changes)
        if settings.model is None:
            raise invalid(
                "no model: name it when connecting (/v1/realtime?model=NAME) or in session.update",
                "session.model",
                code="model_required",
            )
        ready = await self._admitted_turn(event, settings)
        if ready is None:
            return
        running = _Running(ready.renderer.id)
        ready.running = running
        self.active = running
        running.task = self._task = asyncio.create_task(self._respond(ready))
        await asyncio.sleep(0)  # let it start, so a cancel always finds it running its try

    async def _admitted_turn(
        self, event: events.ResponseCreate, settings: Settings
    ) -> _Turn | None:
        """The response's request, checked as the HTTP dialects check theirs, up to admission;
        ``None`` when the key no longer authenticates (the session is then ended)."""
        assert settings.model is not None
        items = self._context(event)
        user_agent = self.request.headers.get("User-Agent")
        self._responses += 1
        endpoint = f"WS {self.request.path} response.create"
        record = RequestRecord(
            endpoint,
            self.request.remote,
            user_agent and user_agent[:200],
            f"{self._socket_record.request_id}.{self._responses}",
            route=endpoint,
        )
        self.request[RECORD] = record  # the record authenticate() fills in
        try:
            caller = await authenticate(self.request)  # revoked or expired since the upgrade?
            caller.ensure_model_allowed(settings.model)
            call = Call(
                self.ctx, caller, turn.Turn(settings.model), visible_models(self.ctx, caller)
            )
            neutral = turn.to_neutral(settings, items, call.capabilities or [])
            prepared = dispatch.ready(call, neutral)
        except ApiError as exc:
            record.error_code = exc.code
            self.ctx.recorder.request(record, exc.status)
            if exc.status != 401:
                raise EventError.from_api(exc) from None
            await self._send([render.error_event(EventError.from_api(exc, event.event_id))])
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"key refused")
            return None
        except EventError as exc:
            record.error_code = exc.code
            self.ctx.recorder.request(record, 400)
            raise
        conversation = self.conversation if event.in_conversation else Conversation()
        renderer = ResponseRenderer(
            settings,
            conversation,
            self.conversation_id if event.in_conversation else None,
            event.metadata,
        )
        return _Turn(call, prepared, renderer, event.event_id)

    def _context(self, event: events.ResponseCreate) -> list[Item]:
        """What the response answers: the conversation, or the response's own ``input``."""
        if event.input is None:
            return list(self.conversation.items)
        return [
            self._item(entry.id, f"response.input.{index}.id")
            if isinstance(entry, events.Reference)
            else entry
            for index, entry in enumerate(event.input)
        ]

    async def _respond(self, ready: _Turn) -> None:
        """Run one response through the pipeline and send its events; file its audit row. This
        task's log lines are about the response (``current_request``)."""
        renderer, running, record = ready.renderer, ready.running, ready.call.caller.record
        status = 200
        final: list[Event] = []
        with current_request(record):
            try:
                try:
                    await self._send(renderer.created())
                    async with dispatch.text_reply(ready.call, ready.prepared) as replies:
                        async for reply in replies:
                            if isinstance(reply, Delta):
                                await self._send(renderer.delta(reply))
                            elif isinstance(reply, End):
                                final = renderer.end(reply)
                            else:
                                raise reply
                except (ApiError, EventError) as exc:
                    error = EventError.from_api(exc) if isinstance(exc, ApiError) else exc
                    error.event_id = ready.event_id
                    status = exc.status if isinstance(exc, ApiError) else 400
                    record.error_code = error.code
                    final = [render.error_event(error), *renderer.failed(error)]
                except asyncio.CancelledError:
                    status, record.error_code = 499, running.cancel_reason or CLIENT_CLOSED
                    if running.cancel_reason != CLIENT_CANCELLED:
                        raise
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()  # response.cancel: this response ends, the session goes on
                    final = renderer.cancelled()
                self._release(running)  # before response.done: the client may create the next
                await self._send(final)
            finally:
                self._release(running)
                self.ctx.recorder.request(record, status)

    def _release(self, running: _Running) -> None:
        if self.active is running:
            self.active = None

    def _cancel(self, event: events.ResponseCancel) -> None:
        running = self.active
        if running is None or running.task is None or running.cancel_reason is not None:
            raise EventError("response_cancel_not_active", "there is no response in progress")
        if event.response_id is not None and event.response_id != running.id:
            raise invalid(
                f"response {event.response_id!r} is not in progress; {running.id!r} is",
                "response_id",
                code="response_cancel_not_active",
            )
        running.cancel_reason = CLIENT_CANCELLED
        running.task.cancel()

    async def _stop(self) -> None:
        """The socket closed: stop the response in progress (CANCEL through the tunnel)."""
        task = self._task
        if task is None or task.done():
            return
        if self.active is not None:
            self.active.cancel_reason = CLIENT_CLOSED
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # -- sending

    async def _send(self, out: list[Event]) -> None:
        """Send ``out`` in order, whole, between other senders' events. A client that is gone
        hears nothing more; its read loop ends the session."""
        async with self._send_lock:
            for event in out:
                if self.ws.closed:
                    return
                try:
                    await self.ws.send_str(json.dumps(event, ensure_ascii=False))
                except ConnectionResetError:
                    return
