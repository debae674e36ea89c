"""Tooling that ships with the package for `explorer sandbox` and `explorer demo`: a
Wawp-compatible sandbox, synthetic chats, and a local Meilisearch. Nothing on the
production path imports it."""
