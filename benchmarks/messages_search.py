"""Message search: recall@5 on phrases taken from the messages, latency, and the page's
search-as-you-type with a messages column.

Builds, in a real Meilisearch, a chats index and its messages index straight from generated
WAHA-shaped messages (several scripts, support-desk vocabulary, order numbers, names,
media with and without captions), each through ``parse_message`` and
``to_message_document`` as the crawl writes them. Then:

- recall@5: for sampled messages, 4 consecutive words of the body as the query; a hit when
  that message is among the first 5, through the CLI's library path
  (``MessageSearcher.search``, what `explorer search --messages` calls) and MCP's
  (``Explorer.search_messages``);
- latency of those searches: Meilisearch's own processing time and the wall time a caller
  in a running process waits (a new connection per search, as the official client does);
- the page: typed one character at a time in headless Chromium through `explorer serve`,
  each keystroke's time until its results (chats and messages) are on screen.

Prints figures; asserts nothing.

    .venv/bin/python benchmarks/messages_search.py --messages 1000000 --chats 100000
    .venv/bin/python benchmarks/messages_search.py --quick      # 50,000 messages
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder comes first on the path, and its mcp.py would hide the SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks.agent_page import pct, type_slowly  # noqa: E402
from explorer.config import Config, MeiliSettings, MessagesSettings  # noqa: E402
from explorer.dev.meili_server import MeiliServer  # noqa: E402
from explorer.doors.mcp_server import Explorer  # noqa: E402
from explorer.doors.serve import AgentPage  # noqa: E402
from explorer.meili.client import IndexStore, RawHttp, dumps  # noqa: E402
from explorer.meili.message_query import MessageSearcher  # noqa: E402
from explorer.records.chats import normalize_chat  # noqa: E402
from explorer.records.documents import INDEX_SETTINGS, to_document  # noqa: E402
from explorer.records.messages import (  # noqa: E402
    MESSAGE_INDEX_SETTINGS,
    messages_index,
    parse_message,
    to_message_document,
)
from explorer.secrets import Secret  # noqa: E402
from tests.browser import Browser  # noqa: E402

INSTANCES = ("MSGBENCH0001", "MSGBENCH0002")
INDEX = "msgbench"
BATCH = 20_000


def words(*lines: str) -> list[str]:
    return " ".join(lines).split()


# Words people write to a support desk, per script. A body is 5 to 16 of them drawn at
# random (a third with an order number), so that most bodies differ: four words in a row
# point at one message, or at a handful.
WORDS = {
    "en": words(
        "order parcel invoice refund delivery driver address payment receipt package tracking",
        "courier late tomorrow today morning evening warehouse customer discount price size",
        "colour return exchange broken missing wrong number call please thanks hello sorry",
        "again still waiting confirm cancel update photo screenshot account card cash bank",
        "transfer branch store shop box label weight shipping free express week monday friday",
        "saturday sunday noon office gate building floor apartment street road bridge station",
    ),
    "es": words(
        "pedido paquete factura reembolso entrega repartidor dirección pago recibo seguimiento",
        "tarde mañana hoy almacén cliente descuento precio talla color devolución cambio roto",
        "falta número llamar gracias hola perdón todavía esperando confirmar cancelar foto",
        "cuenta tarjeta efectivo banco tienda caja envío semana lunes viernes sábado calle",
    ),
    "pt": words(
        "pedido encomenda fatura reembolso entrega motorista endereço pagamento recibo",
        "rastreio atraso amanhã hoje armazém cliente desconto preço tamanho cor devolução",
        "troca quebrado faltando obrigado olá desculpa ainda esperando confirmar cancelar foto",
        "conta cartão dinheiro banco loja caixa frete semana segunda sexta sábado rua",
    ),
    "ar": words(
        "طلب شحنة فاتورة استرداد توصيل سائق عنوان دفع إيصال تتبع متأخر غدا اليوم صباحا مساء",
        "مستودع عميل خصم سعر مقاس لون إرجاع استبدال مكسور ناقص رقم اتصال شكرا مرحبا آسف",
        "مازلت انتظر تأكيد إلغاء صورة حساب بطاقة نقدا بنك فرع متجر صندوق أسبوع الاثنين الجمعة",
    ),
    "ru": words(
        "заказ посылка счёт возврат доставка курьер адрес оплата чек отслеживание опоздание",
        "завтра сегодня утром вечером склад клиент скидка цена размер цвет обмен сломан нет",
        "номер позвонить спасибо привет извините всё ещё жду подтвердить отменить фото",
        "аккаунт карта наличные банк магазин коробка неделя понедельник пятница улица",
    ),
    "hi": words(
        "ऑर्डर पार्सल बिल रिफंड डिलीवरी ड्राइवर पता भुगतान रसीद ट्रैकिंग देर कल आज सुबह शाम",
        "गोदाम ग्राहक छूट कीमत साइज़ रंग वापसी बदलना टूटा नंबर कॉल धन्यवाद नमस्ते माफ़ी अभी",
        "इंतज़ार पुष्टि रद्द फोटो खाता कार्ड नकद बैंक दुकान डिब्बा हफ्ता सोमवार शुक्रवार",
    ),
}
SCRIPTS = list(WORDS)
SHARES = [0.45, 0.12, 0.1, 0.15, 0.1, 0.08]  # English first, as on most business numbers
NAMES = [
    "Sara Ahmed", "Mohamed Hassan", "Kofi Mensah", "Ana Souza", "Lucas Pereira", "María García",
    "José Martínez", "Ivan Petrov", "Olga Smirnova", "Priya Sharma", "Rahul Verma",
    "Fatima Zahra", "Omar Khalil", "Aisha Bello", "Chinedu Okafor", "John Smith", "Emily Brown",
    "Yusuf Ali", "Layla Nasser", "Dmitri Volkov",
]  # fmt: skip
MEDIA = [("image/jpeg", 0.5), ("application/pdf", 0.2), ("audio/ogg", 0.2), ("video/mp4", 0.1)]


# The long tail every real conversation has (street and product names, nicknames, slang):
# per script, pseudo-words of two or three syllables of that script, drawn for about one
# word in four.
SYLLABLES = {
    "latin": "ka lo mi ra tu ne so vi da pe ri go ma lu ze ba to fi na se co",
    "ar": "كا لو مي را تو نا سو في دا بي ري غو ما لو زا با تو فا نا سي",
    "ru": "ка ло ми ра ту не со ви да пе ри го ма лу зе ба то фи на се",
    "hi": "का लो मी रा तू ने सो वी दा पे री गो मा लू ज़े बा तो फ़ी ना से",
}
TAIL = {
    script: [a + b + c for a in sy for b in sy for c in ["", *sy]]
    for script, sy in ((k, v.split()) for k, v in SYLLABLES.items())
}


def body_text(rng: random.Random, script: str) -> str:
    words = WORDS[script]
    tail = TAIL.get(script, TAIL["latin"])
    n = rng.randint(5, 16)
    out = [rng.choice(tail) if rng.random() < 0.25 else rng.choice(words) for _ in range(n)]
    if rng.random() < 0.35:
        out.insert(rng.randrange(len(out)), str(rng.randint(1000, 99999)))  # an order number
    return " ".join(out).capitalize() + rng.choice([".", "?", "!", "", " 🙏", " 👍"])


def chat_jid(n: int) -> str:
    if n % 10 == 0:
        return f"1203630{n:011d}@g.us"
    return f"{20_100_000_000 + n * 7}@c.us"


def generate(
    chats: int, messages: int, seed: int, now: int
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(instance, chat jid, raw WAHA message)``, ``messages`` of them over ``chats`` chats,
    timestamps spread over the last 90 days."""
    rng = random.Random(seed)
    for i in range(messages):
        n = rng.randrange(chats)
        instance = INSTANCES[n % len(INSTANCES)]
        jid = chat_jid(n)
        script = rng.choices(SCRIPTS, SHARES)[0]
        from_me = rng.random() < 0.4
        raw: dict[str, Any] = {
            "id": f"{str(from_me).lower()}_{jid}_3EB0{i:016X}",
            "timestamp": now - rng.randrange(90 * 86_400),
            "from": jid, "to": jid, "fromMe": from_me, "ack": 3, "hasMedia": False,
            "body": body_text(rng, script),
        }  # fmt: skip
        if rng.random() < 0.06:
            mime = rng.choices([m for m, _ in MEDIA], [s for _, s in MEDIA])[0]
            raw.update(hasMedia=True, media={"mimetype": mime})
            if rng.random() < 0.5:
                raw["body"] = ""  # no caption: the type word is the body
        if jid.endswith("@g.us") and not from_me:
            raw["participant"] = f"{20_200_000_000 + rng.randrange(5000)}@c.us"
        yield instance, jid, raw


def build(meili: MeiliServer, chats: int, messages: int, seed: int) -> dict[str, Any]:
    settings = MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index=INDEX)
    store = IndexStore(settings, timeout=24 * 3600)
    names = {}
    chat_docs = []
    now = int(time.time())
    rng = random.Random(seed + 1)
    for n in range(chats):
        jid = chat_jid(n)
        name = rng.choice(NAMES) if not jid.endswith("@g.us") else f"Drivers {n}"
        names[jid] = name
        chat = normalize_chat({"id": jid, "name": name, "timestamp": now}, INSTANCES[n % 2])
        assert chat is not None
        chat_docs.append(to_document(chat, label=None, crawled_at=now))
    store.create(INDEX)
    store.apply_settings(INDEX, INDEX_SETTINGS)
    tasks = [store.add(INDEX, chat_docs[i : i + BATCH]) for i in range(0, len(chat_docs), BATCH)]
    uid = messages_index(INDEX)
    store.create(uid)
    store.apply_settings(uid, MESSAGE_INDEX_SETTINGS)
    started = time.monotonic()
    cpu0 = os.times()
    sample: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    pick = random.Random(seed + 2)
    for instance, jid, raw in generate(chats, messages, seed, now):
        msg = parse_message(raw, instance_id=instance, chat_jid=jid)
        doc = to_message_document(msg, chat_name=names[jid])
        batch.append(doc)
        if len(sample) < 400 and pick.random() < 400 * 3 / messages and not msg.has_media:
            sample.append(doc)
        if len(batch) == BATCH:
            tasks.append(store.add_json(uid, dumps(batch)))
            batch = []
    if batch:
        tasks.append(store.add_json(uid, dumps(batch)))
    sent = time.monotonic() - started
    store.wait(tasks)
    took = time.monotonic() - started
    cpu = os.times()
    print(f"  built {messages:,} messages over {chats:,} chats: sent in {sent:.0f} s, "
          f"indexed in {took:.0f} s (this process {cpu.user - cpu0.user:.0f} s CPU); "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    stats = store.ask(lambda c: c.index(uid).get_stats())
    print(f"  documents in the messages index: {stats.number_of_documents:,}")
    return {"settings": settings, "sample": sample}


def script_of(text: str) -> str:
    """``LATIN``, ``ARABIC``, ``CYRILLIC``, ``DEVANAGARI``: the script of the first letter."""
    letter = next((ch for ch in text if ch.isalpha()), "")
    return unicodedata.name(letter, "OTHER ?").split()[0] if letter else "OTHER"


def phrase(doc: dict[str, Any], rng: random.Random) -> str:
    words = doc["body"].split()
    if len(words) <= 4:
        return " ".join(words)
    start = rng.randrange(len(words) - 3)
    return " ".join(words[start : start + 4])


def measure(world: dict[str, Any], seed: int, show: int = 0) -> list[str]:
    rng = random.Random(seed + 3)
    settings: MeiliSettings = world["settings"]
    queries = [(phrase(d, rng), d["message_id"]) for d in world["sample"][:300]]
    cfg = Config(meilisearch=settings, messages=MessagesSettings(enabled=True))
    explorer = Explorer(cfg)
    found = {"cli": 0, "mcp": 0, "phrase": 0}
    server_ms: list[float] = []
    wall_ms: list[float] = []
    misses: list[str] = []
    per_script: dict[str, list[bool]] = {}
    with MessageSearcher(settings) as searcher:
        for query, mid in queries:
            t0 = time.perf_counter()
            result = searcher.search(query, limit=5, highlight=True)
            wall_ms.append((time.perf_counter() - t0) * 1000)
            server_ms.append(result.processing_ms)
            hit = mid in [h["message_id"] for h in result.hits]
            found["cli"] += hit
            answer = explorer.search_messages(query, limit=5)
            found["mcp"] += mid in [m["message_id"] for m in answer["messages"]]
            # The phrase may be said word for word in another message too: then the query
            # cannot tell the two apart, and either one is the right answer.
            said = [h for h in result.hits if query.lower() in str(h.get("body", "")).lower()]
            found["phrase"] += hit or bool(said)
            kind = script_of(query)
            per_script.setdefault(kind, []).append(hit)
            if not hit and not said and len(misses) < show:
                deeper = [h["message_id"] for h in searcher.search(query, limit=200).hits]
                rank = deeper.index(mid) + 1 if mid in deeper else None
                top = " | ".join(str(h["body"])[:60] for h in result.hits[:2])
                misses.append(f"    {query!r}: {result.total} match, the message ranks {rank}; "
                              f"first: {top}")  # fmt: skip
    n = len(queries)
    print(f"  recall@5 on {n} four-word phrases: CLI path {found['cli'] / n:.3f}, "
          f"MCP {found['mcp'] / n:.3f} (the message itself, or one that says the phrase word "
          f"for word: {found['phrase'] / n:.3f})")  # fmt: skip
    by_script = [f"{kind} {sum(hits) / len(hits):.3f} ({len(hits)})"
                 for kind, hits in sorted(per_script.items())]  # fmt: skip
    print("  recall@5 by script: " + ", ".join(by_script))
    if misses:
        print("\n".join(misses))
    print(f"  search (CLI path, with snippets): Meilisearch p50 {pct(server_ms, 50):.0f} ms, "
          f"p95 {pct(server_ms, 95):.0f} ms; caller's wall p50 {pct(wall_ms, 50):.0f} ms, "
          f"p95 {pct(wall_ms, 95):.0f} ms")  # fmt: skip
    return [q for q, _ in queries]


def page(world: dict[str, Any], queries: list[str], typed: int) -> None:
    settings: MeiliSettings = world["settings"]
    with RawHttp(settings) as http:  # an agent's key, on the chats index and its messages
        body = {"actions": ["search", "indexes.get", "stats.get", "version"],
                "indexes": [INDEX, messages_index(INDEX)], "expiresAt": None}  # fmt: skip
        key = http.json("POST", "/keys", body)["key"]
    served = AgentPage(MeiliSettings(url=settings.url, index=INDEX), port=0, messages=True).start()
    keystrokes: list[float] = []
    try:
        with Browser(1400, 1000, timeout=60) as b:
            b.navigate(f"{served.url}#key={key}")
            b.wait_for("document.body.dataset.state === 'results'", timeout=60)
            for query in queries[:typed]:
                keystrokes += type_slowly(b, query)
            shown = b.evaluate("document.querySelectorAll('#messages li').length")
    finally:
        served.stop()
    print(f"  page (chats + messages per keystroke, {len(keystrokes)} keystrokes, {typed} "
          f"phrases typed): keystroke to results on screen p50 {pct(keystrokes, 50):.0f} ms, "
          f"p95 {pct(keystrokes, 95):.0f} ms; last phrase showed {shown} messages")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--typed", type=int, default=15, help="phrases typed on the page")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--misses", type=int, default=0, help="print up to N missed phrases")
    parser.add_argument("--quick", action="store_true", help="50,000 messages, 5,000 chats")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.chats, args.typed = 50_000, 5_000, 5
    print(f"{args.messages:,} messages, {args.chats:,} chats; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="msg-bench-") as tmp,
        MeiliServer(Path(tmp) / "meili", max_indexing_memory="2GiB") as meili,
    ):
        world = build(meili, args.chats, args.messages, args.seed)
        queries = measure(world, args.seed, args.misses)
        page(world, queries, args.typed)
        print(f"  load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
