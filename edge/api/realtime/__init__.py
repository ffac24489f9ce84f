"""The OpenAI Realtime API's text modality: ``GET /v1/realtime``, a WebSocket (README "Realtime API
(text)").

``events`` decodes and checks client events, ``settings`` the session's settings and a
response's overrides, ``conversation`` holds the session's items (bounded, in memory only),
``turn`` makes a response's neutral request (through the chat dialect), ``render`` the server
events, and ``handler`` serves the socket: each ``response.create`` goes through the one
pipeline (``edge.api.dispatch``) as an HTTP request would. Audio is refused, never dropped: an
``error`` event with the code ``audio_not_supported`` names what was sent."""

from edge.api.realtime.handler import install, serve

__all__ = ["install", "serve"]
