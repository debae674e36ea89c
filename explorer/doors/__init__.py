"""Doors: the three ways in, long-running servers on one shared HTTP server
(``server``) with Prometheus metrics (``metrics``): ``serve`` for agents (the page and
its read-only search door), ``listen`` for Wawp's webhooks, ``mcp_server`` for
assistants."""
