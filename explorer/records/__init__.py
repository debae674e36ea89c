"""Records: what a chat is, whatever the engine said, and the rules about it.

Pure: no I/O. A raw engine chat becomes a :class:`~explorer.records.chats.Chat`
(``chats``), a webhook event a mergeable update (``events``), a chat an index document
(``documents``); phone forms (``phones``), filter expressions (``filters``) and how a
record is shown to a person (``output``) live here too. Everything above imports these.
"""
