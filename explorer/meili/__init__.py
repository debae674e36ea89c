"""Meilisearch: the one way out to it (``client``: the official client, its errors in one
wording, the one search body), the index settings as code (``settings``), keys and tenant
tokens (``keys``, ``readonly``), and search (``query``: filters, phone queries,
:func:`explorer.search`)."""
