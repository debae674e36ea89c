"""Meilisearch: the one way out to it (``client``, with its errors in ``errors``), the
index settings as code (``settings``), keys and tenant tokens (``keys``, ``readonly``), and
search (``query``: filters, phone queries, :func:`explorer.search`)."""
