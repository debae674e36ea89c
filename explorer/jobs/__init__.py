"""Jobs: what an operator runs, each ending in a report with ``summary()`` and
``to_json()``. ``reindex`` (build, verify, swap), ``sync``, ``housekeeping`` (audit,
zombies), ``check``, ``stats``, ``schedule`` (nightly reindex, sync in between), and
their files in the state directory (``state``, the webhook ``journal``)."""
