"""Deterministic synthetic WhatsApp chats for the sandbox.

Chat ``i`` of an instance is a pure function of ``(seed, instance, i)``: nothing is stored
per chat, so a sandbox of a million chats costs only its sort orders (4 bytes per chat and
sort key). Ids are unique by construction: every JID embeds an affine permutation of ``i``
whose offset depends on the instance, so two instances do not share number endings.

Each chat is rendered in the shape one WAHA engine returns (see docs/wawp.md):
``webjs`` (object ids, rich flags), ``noweb`` (raw Baileys conversations, ``@s.whatsapp.net``)
or ``gows`` (only id, name and timestamp).

LIDs: a share of the people (``lid_share``) are listed under a LID. Each has a phone number;
Wawp knows it for a share of them (``lid_known``), and a share of those (``lid_pairs``)
also have a chat under their phone JID, which engines that do not merge list as a second
chat (the *twin*: :meth:`Generator.twin`). NOWEB names the number (``pnJid``) on half of
the known LID chats and the LID (``lidJid``) on phone chats; some LID people have a
username. With ``pn_twins``, every LID chat that names its number has a twin, and twins
name no LID: the phone chat knows only itself, so only the LID chat's ``pnJid`` ties the
two together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

_MASK64: Final = (1 << 64) - 1

# Country code, then national prefixes of one length each; a 7-digit subscriber number
# (2000000-9999999) follows, which keeps every number valid-looking and unique per i.
COUNTRIES: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("1", ("202", "212", "305", "415", "646", "718"), "latin"),
    ("44", ("740", "770", "791"), "latin"),
    ("20", ("100", "101", "111", "122", "155"), "arabic"),
    ("91", ("981", "991", "971", "701", "811"), "devanagari"),
    ("55", ("1198", "2198", "3199"), "latin"),
    ("49", ("1511", "1521", "1761"), "latin"),
    ("966", ("50", "55", "53"), "arabic"),
    ("971", ("50", "52", "55"), "arabic"),
    ("7", ("915", "926", "903"), "cyrillic"),
    ("86", ("1380", "1391", "1860"), "cjk"),
    ("33", ("61", "62", "75"), "latin"),
    ("52", ("551", "331", "811"), "latin"),
    ("234", ("803", "806", "813"), "latin"),
    ("81", ("901", "802"), "cjk"),
    ("62", ("8121", "8131", "8571"), "latin"),
    ("34", ("61", "62", "71"), "latin"),
    ("27", ("82", "83", "72"), "latin"),
)

# Names by script. Latin has letters Unicode does not decompose (Ł, Đ, Ø, Þ, ß: no
# accent to strip) beside accented ones, so the Latin-letter search (explorer/records/latin.py)
# meets them as it meets Cyrillic, Arabic and Devanagari (ß begins no word: Straßer).
FIRST: Final[dict[str, tuple[str, ...]]] = {
    "latin": (
        "José",
        "María",
        "Zoë",
        "François",
        "Ana",
        "João",
        "Chloé",
        "Björn",
        "Łukasz",
        "Ørjan",
        "Đức",
        "Priya",
        "Ahmed",
        "Liam",
        "Olivia",
        "Noah",
        "Emma",
        "Lucas",
        "Sofía",
        "Mateo",
        "Chinedu",
        "Aisha",
        "Kenji",
        "Þórunn",
        "Jürgen",
        "Amélie",
        "Ngozi",
        "Carlos",
        "Fatima",
        "Thabo",
    ),
    "arabic": (
        "محمد",
        "فاطمة",
        "أحمد",
        "مريم",
        "علي",
        "نور",
        "يوسف",
        "سارة",
        "Ahmed",
        "Mohamed",
        "Omar",
        "Layla",
        "Youssef",
        "Hana",
    ),
    "cyrillic": ("Дмитрий", "Ольга", "Иван", "Наталья", "Сергей", "Анна", "Alexei", "Irina"),
    "devanagari": ("राहुल", "प्रिया", "अमित", "सुनीता", "Rahul", "Priya", "Anil", "Deepa"),
    "cjk": ("王伟", "李娜", "张敏", "山田", "佐藤", "Wei", "Yuki", "Haruto"),
}
LAST: Final[dict[str, tuple[str, ...]]] = {
    "latin": (
        "Álvarez",
        "Müller",
        "Lefèvre",
        "Peña",
        "Straßer",
        "Silva",
        "Nguyen",
        "O'Brien",
        "García",
        "Kowalski",
        "Okafor",
        "Dubois",
        "Rossi",
        "Smith",
        "Johansson",
        "Tanaka",
        "Mbeki",
        "Fernández",
        "Schäfer",
        "Costa",
    ),
    "arabic": ("علي", "حسن", "الزهراء", "إبراهيم", "Hassan", "Ibrahim", "El-Sayed", "Mansour"),
    "cyrillic": ("Иванов", "Смирнова", "Петров", "Кузнецова", "Volkov", "Popova"),
    "devanagari": ("शर्मा", "पटेल", "गुप्ता", "Sharma", "Patel", "Gupta"),
    "cjk": ("", "", "Chen", "Sato", "Li"),
}
GROUPS: Final = (
    "Support – Night Shift",
    "Wholesale Buyers",
    "Courier Coordination",
    "Family 👨‍👩‍👧",
    "Book Club 📚",
    "Class of 2009",
    "Ops Team",
    "Neighbours",
    "Weekend Football ⚽",
    "عائلة حسن",
    "فريق المبيعات",
    "Команда продаж",
    "Соседи",
    "परिवार",
    "दोस्त",
    "同学会",
    "家族",
    "Équipe Marketing",
    "Café Crème Fans",
    "São Paulo Drivers",
    "Lagos Suppliers",
    "VIP Customers",
    "Returns & Refunds",
    "Pizza 🍕 Crew",
)
CHANNELS: Final = ("Acme Deals", "Daily News", "Tech Updates 🚀", "أخبار اليوم", "Новости")
EMOJI: Final = (" ❤️", " 🌟", " 😀", " 🙏", " 📦")


def _mix(x: int) -> int:
    """splitmix64: cheap, well-spread 64-bit hashing for per-chat choices."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def instance_seed(seed: int, instance_id: str) -> int:
    h = seed & _MASK64
    for ch in instance_id.encode():
        h = _mix(h ^ ch)
    return h


@dataclass(frozen=True, slots=True)
class ChatSpec:
    index: int
    server: str  # c.us, lid, g.us, newsletter, broadcast
    user: str
    name: str | None
    ts: int | None
    archived: bool
    pinned_at: int
    mute_until: int  # 0 = not muted, -1 = forever, else unix time
    unread: int
    cc: str | None = None  # country code of an individual's number
    lid: str | None = None  # a person behind a LID: the LID's digits
    pn: str | None = None  # ...and their phone digits (whether or not Wawp knows them)
    username: str | None = None
    pn_jid: bool = False  # NOWEB names the number beside the LID (pnJid)
    lid_jid: bool = True  # a LID person's phone chat: NOWEB names the LID beside it (lidJid)

    @property
    def jid(self) -> str:
        """The canonical JID (``@c.us`` form) the crawler should end up with."""
        return f"{self.user}@{self.server}"

    @property
    def is_group(self) -> bool:
        return self.server == "g.us"


class Generator:
    """Chats of one instance: ``spec(i)`` for i in ``range(count)`` (plus added ones)."""

    def __init__(
        self,
        seed: int,
        instance_id: str,
        epoch: int,
        *,
        lid_share: float = 0.08,
        lid_known: float = 0.0,
        lid_pairs: float = 0.0,
        pn_twins: bool = False,
    ) -> None:
        self.seed = instance_seed(seed, instance_id)
        self.epoch = epoch
        # Kinds by a number in [0, 1000): LIDs take the top of the people's share, so the
        # default share (8%) gives the chats it always gave.
        self.lid_from = 760 - round(min(max(lid_share, 0.0), 0.76) * 1000)
        self.lid_known = round(lid_known * 10_000)
        self.lid_pairs = round(lid_pairs * 10_000)
        self.pn_twins = pn_twins

    def _h(self, i: int, salt: int) -> int:
        return _mix(self.seed ^ _mix(i * 0x100000001B3 + salt))

    def kind(self, i: int) -> str:
        if i == 3:
            return "status"
        r = self._h(i, 1) % 1000
        if r < self.lid_from:
            return "c.us"
        if r < 760:
            return "lid"
        if r < 880:
            return "g.us"
        if r < 910:
            return "g.us-old"
        if r < 930:
            return "newsletter"
        if r < 940:
            return "broadcast"
        return "c.us"

    def _phone(self, i: int, salt: int) -> tuple[str, str, str]:
        cc, prefixes, script = COUNTRIES[self._h(i, salt) % len(COUNTRIES)]
        prefix = prefixes[self._h(i, salt + 1) % len(prefixes)]
        subscriber = 2_000_000 + (i * 4_567_891 + self.seed) % 8_000_000
        return cc, f"{cc}{prefix}{subscriber}", script

    def user_and_server(self, i: int) -> tuple[str, str]:
        kind = self.kind(i)
        if kind == "c.us":
            return self._phone(i, 2)[1], "c.us"
        if kind == "lid":
            return self._lid(i), "lid"
        if kind == "g.us":
            return f"120363{(i * 982_451_653 + (self.seed >> 7)) % 10**12:012d}", "g.us"
        if kind == "g.us-old":
            creator = self._phone(i, 5)[1]
            return f"{creator}-{1_300_000_000 + i * 7}", "g.us"
        if kind == "newsletter":
            return f"120363{(i * 674_506_111 + (self.seed >> 13)) % 10**12:012d}", "newsletter"
        if kind == "broadcast":
            return f"{1_600_000_000 + i}", "broadcast"
        return "status", "broadcast"

    def _lid(self, i: int) -> str:
        return f"2{(i * 982_451_653 + self.seed) % 10**14:014d}"

    def pn(self, i: int) -> str:
        """The phone digits behind LID chat ``i``."""
        return self._phone(i, 20)[1]

    def known(self, i: int) -> bool:
        """Whether Wawp knows the number behind LID chat ``i`` (before any is learnt)."""
        return self._h(i, 21) % 10_000 < self.lid_known

    def paired(self, i: int) -> bool:
        """Whether LID person ``i`` also has a chat under their phone JID (a twin): a share
        of the known ones, and with ``pn_twins`` each whose chat names the number."""
        if not self.known(i):
            return False
        return self._h(i, 22) % 10_000 < self.lid_pairs or (self.pn_twins and _names_pn(i))

    def twin(self, i: int) -> ChatSpec:
        """LID person ``i``'s chat under their phone JID: its own activity and unread
        count, and the name saved in the contacts."""
        base = self.spec(i)
        assert base.lid is not None and base.pn is not None
        r = self._h(i, 24)
        ts = self.epoch - r % (60 * 86_400) if r % 10 else None
        return replace(
            base,
            server="c.us",
            user=base.pn,
            ts=ts,
            unread=self._h(i, 25) % 6,
            pinned_at=0,
            pn_jid=False,
            lid_jid=not self.pn_twins,
        )

    def _person(self, i: int, script: str) -> str | None:
        r = self._h(i, 3) % 100
        if r < 6:
            return None
        if r < 8:
            return ""
        first = FIRST[script][self._h(i, 6) % len(FIRST[script])]
        last = LAST[script][self._h(i, 7) % len(LAST[script])]
        name = f"{first} {last}".strip() if self._h(i, 8) % 10 < 8 else first
        if self._h(i, 9) % 100 < 5:
            name += EMOJI[self._h(i, 10) % len(EMOJI)]
        return name

    def spec(self, i: int) -> ChatSpec:
        kind = self.kind(i)
        user, server = self.user_and_server(i)
        cc: str | None = None
        lid = pn = username = None
        if kind == "c.us":
            cc, _, script = self._phone(i, 2)
            name = self._person(i, script)
        elif kind == "lid":
            name = self._person(i, "latin")
            cc, pn, _ = self._phone(i, 20)  # as pn(i)
            lid = user
            if self._h(i, 23) % 2 and name:
                username = f"{name.split()[0].lower()}.{self._h(i, 26) % 1000}"
        elif kind.startswith("g.us"):
            name = GROUPS[self._h(i, 11) % len(GROUPS)]
            if self._h(i, 12) % 3 == 0:
                name = f"{name} {self._h(i, 13) % 50 + 1}"
        elif kind == "newsletter":
            name = CHANNELS[self._h(i, 11) % len(CHANNELS)]
        elif kind == "broadcast":
            name = f"Promo list {self._h(i, 11) % 20 + 1}" if self._h(i, 12) % 2 else None
        else:
            name = None
        r = self._h(i, 4) % 100
        day = 86_400
        if r < 2:
            ts = None
        else:
            span = day if r < 30 else 30 * day if r < 60 else 365 * day if r < 90 else 5 * 365 * day
            ts = self.epoch - (self._h(i, 14) % span)
        muted = self._h(i, 15) % 100
        mute_until = 0 if muted >= 10 else -1 if muted < 4 else self.epoch + 86_400 * (muted + 1)
        unread = self._h(i, 16) % 50 + 1 if self._h(i, 17) % 4 == 0 else 0
        return ChatSpec(
            index=i,
            server=server,
            user=user,
            name=name,
            ts=ts,
            archived=self._h(i, 18) % 100 < 8,
            pinned_at=(ts or self.epoch) if self._h(i, 19) % 100 < 3 else 0,
            mute_until=mute_until,
            unread=unread,
            cc=cc,
            lid=lid,
            pn=pn,
            username=username,
            pn_jid=lid is not None and _names_pn(i),
        )


def _names_pn(i: int) -> bool:
    """Whether NOWEB names the number beside LID chat ``i`` (``pnJid``), when it is known."""
    return i % 2 == 0


def raw_id(spec: ChatSpec, shape: str) -> str:
    """The id string an engine reports (and sorts by) for this chat."""
    if shape == "noweb" and spec.server == "c.us":
        return f"{spec.user}@s.whatsapp.net"
    return spec.jid


def activity(spec: ChatSpec, shape: str) -> int | None:
    """The last activity an engine reports for this chat: NOWEB only lists chats with
    messages, so a silent chat there still has its creation time."""
    if shape == "noweb":
        return spec.ts or spec.index + 1_400_000_000
    return spec.ts


def _formatted_phone(spec: ChatSpec) -> str:
    national = spec.user[len(spec.cc or "") :]
    return f"+{spec.cc} {national[:3]} {national[3:6]} {national[6:]}"


def _ts_encoding(spec: ChatSpec, ts: int) -> Any:
    """NOWEB uint64s come as numbers, sometimes strings or protobuf Longs."""
    r = spec.index % 50
    if r == 7:
        return str(ts)
    if r == 13:
        return {"low": ts & 0xFFFFFFFF, "high": ts >> 32, "unsigned": True}
    return ts


def render(spec: ChatSpec, shape: str) -> dict[str, Any]:
    if shape == "gows":
        return {"id": spec.jid, "name": spec.name or "", "conversationTimestamp": spec.ts or 0}
    if shape == "noweb":
        chat: dict[str, Any] = {"id": raw_id(spec, "noweb")}
        if spec.name and (spec.server != "c.us" or spec.index % 3 == 0):
            chat["name"] = spec.name
        chat["conversationTimestamp"] = _ts_encoding(spec, activity(spec, shape) or 0)
        chat["archived"] = spec.archived
        if spec.pinned_at:
            chat["pinned"] = spec.pinned_at
        if spec.mute_until:
            chat["muteEndTime"] = spec.mute_until
        if spec.server == "newsletter":
            chat["readOnly"] = True
        if spec.server == "c.us" and spec.lid:
            if spec.lid_jid:
                chat["lidJid"] = f"{spec.lid}@lid"
        elif spec.server == "c.us" and spec.index % 5 == 0:
            chat["lidJid"] = f"1{spec.index:014d}@lid"
        if spec.server == "lid" and spec.pn_jid and spec.pn:
            chat["pnJid"] = f"{spec.pn}@s.whatsapp.net"
        if spec.username:
            chat["username"] = spec.username
        if spec.is_group and spec.unread:
            chat["unreadMentionCount"] = spec.unread % 3
        return chat
    name = spec.name
    if not name and spec.server == "c.us":
        name = _formatted_phone(spec)  # WhatsApp Web shows the number when no contact name
    chat = {
        "id": {"server": spec.server, "user": spec.user, "_serialized": spec.jid},
        "name": name,
        "isGroup": spec.is_group,
        "isReadOnly": spec.server == "newsletter",
        "unreadCount": spec.unread,
        "archived": spec.archived,
        "pinned": bool(spec.pinned_at),
        "isMuted": spec.mute_until != 0,
        "muteExpiration": spec.mute_until,
    }
    if spec.ts is not None:
        chat["timestamp"] = spec.ts
        if spec.index % 4 == 0:
            chat["lastMessage"] = {
                "id": {"fromMe": False, "remote": spec.jid, "_serialized": f"false_{spec.jid}_X"},
                "body": "Is my order shipped?",
                "timestamp": spec.ts,
                "type": "chat",
            }
    if spec.is_group:
        chat["groupMetadata"] = {"creation": (spec.ts or 1_600_000_000) - 86_400, "size": 12}
    return chat


def merged_listing(spec: ChatSpec, known: bool) -> ChatSpec:
    """How an engine that merges lists a LID person: under the phone JID when it knows
    the number (NOWEB then names the LID beside it), else under the LID."""
    if spec.server != "lid" or not known or spec.pn is None:
        return unmerged_listing(spec, known)
    return replace(spec, server="c.us", user=spec.pn, pn_jid=False)


def unmerged_listing(spec: ChatSpec, known: bool) -> ChatSpec:
    """A LID chat as listed by an engine that does not merge: NOWEB's ``pnJid`` only
    where the number is known."""
    if spec.server == "lid" and spec.pn_jid and not known:
        return replace(spec, pn_jid=False)
    return spec


def renamed(spec: ChatSpec, name: str | None) -> ChatSpec:
    return replace(spec, name=name)


def touched(spec: ChatSpec, ts: int) -> ChatSpec:
    return replace(spec, ts=ts)


# WhatsApp Business labels: every instance has the same names (the same label in two
# instances is one name to filter on), with the ids WhatsApp gives (1, 2, …, per account).
# Names an index must keep as they are: quotes, a backslash, a comma, emoji, 300 characters.
LABELS: Final[tuple[tuple[str, str, int], ...]] = (  # name, colorHex, chats per 1000
    ("New customer", "#ff9485", 120),
    ("New order", "#64c4ff", 80),
    ("Pending payment", "#ffd429", 50),
    ("Paid", "#dfaef0", 40),
    ("VIP \"gold\" \\ 'plus'", "#99b6c1", 30),
    ("Billing, EU", "#55ccb3", 20),
    ("🔥 Hot lead", "#ff9dff", 10),
    (("Follow up after the spring promotion, " * 8)[:300], "#d3a91d", 5),
)


def label_object(k: int) -> dict[str, Any]:
    """Label ``k`` (0-based) as ``/v2/labels`` and ``label.upsert`` give it."""
    name, color, _ = LABELS[k]
    return {"id": str(k + 1), "name": name, "color": k, "colorHex": color}


def labelled(gen: Generator, i: int, k: int) -> bool:
    """Whether chat ``i`` carries label ``k`` (before any mutation)."""
    return gen._h(i, 100 + k) % 1000 < LABELS[k][2]


# -- messages --------------------------------------------------------------------------
#
# A chat's messages are a pure function of its spec, like the chat: message ``k`` (0 is
# the newest) is built on demand, so a million messages cost no memory. The history ends
# at the chat's last activity (``spec.ts``) and reaches back over months, so that a
# retention window of weeks leaves some out. A few are what engines send on a bad day:
# no id, no timestamp, a null body, control characters, not an object, and one body of
# 1 MB per instance (chat 1's third message).

ME: Final = "15550100000@c.us"  # the sandbox's account (session/info and webhooks)
BIG_BODY: Final = 1024 * 1024  # characters of the one huge body
TEXTS: Final[dict[str, tuple[str, ...]]] = {
    "latin": (
        "Is order {n} shipped?",
        "Can I change the delivery address for order {n}?",
        "The invoice {n} is attached, please check the total",
        "Driver is running late, about {m} minutes",
        "Thanks, received it in good condition!",
        "Do you have size {m} in blue?",
        "Refund for order {n} still not received",
        "Meeting moved to {m}:30 tomorrow",
        "Café au lait pour {m} personnes, s'il vous plaît",
        "¿Dónde está mi pedido {n}?",
        "Obrigado pela entrega rápida, pedido {n}",
        "Können Sie die Rechnung {n} noch einmal senden?",
    ),
    "arabic": (
        "هل تم شحن الطلب {n}؟",
        "شكرا جزيلا، وصلت الطلبية",
        "السائق متأخر {m} دقيقة",
        "أريد استرجاع المبلغ للطلب {n}",
    ),
    "cyrillic": (
        "Где мой заказ {n}?",
        "Спасибо, всё получил",
        "Курьер опаздывает на {m} минут",
        "Пришлите, пожалуйста, счёт {n}",
    ),
    "devanagari": ("मेरा ऑर्डर {n} कहाँ है?", "धन्यवाद, सामान मिल गया", "ड्राइवर {m} मिनट लेट है"),
    "cjk": (
        "订单 {n} 发货了吗？",
        "谢谢，已经收到了",
        "注文 {n} はいつ届きますか？",
        "司机晚到 {m} 分钟",
    ),
    "emoji": ("👍", "🎉🎉 order {n} arrived 🙏", "❤️😂", "📦➡️🏠 {m}"),
}
REPLIES: Final = (
    "Yes, order {n} left the warehouse today",
    "We are checking and will get back to you",
    "Your refund for {n} was processed",
    "Please send a photo of the label",
    "تم الشحن اليوم",
    "Отправили сегодня",
    "已发货 {n}",
)
CAPTIONS: Final = ("Photo of the damaged box {n}", "Invoice {n}", "Label for return {m}", "")
MEDIA: Final = (
    ("image", "image/jpeg"),
    ("video", "video/mp4"),
    ("ptt", "audio/ogg; codecs=opus"),
    ("document", "application/pdf"),
    ("sticker", "image/webp"),
)
_SCRIPTS: Final = ("latin", "arabic", "cyrillic", "devanagari", "cjk", "emoji")


def _chat_script(spec: ChatSpec) -> str:
    for cc, _, script in COUNTRIES:
        if spec.cc == cc:
            return script
    return "latin"


def _msg_hash(seed: int, spec: ChatSpec, salt: int) -> int:
    return _mix(seed ^ _mix(spec.index * 0x100000001B3 + len(spec.server) * 7919 + salt))


def chat_messages(
    gen: Generator,
    spec: ChatSpec,
    count: int,
    *,
    offset: int = 0,
    limit: int | None = None,
    added: tuple[int, ...] = (),
) -> list[Any]:
    """Chat ``spec``'s messages in WAHA's shape, newest first, ``[offset:offset+limit]``.

    ``count`` messages were generated, the newest at ``spec.ts`` (give the spec as it was
    generated, not as touched); ``added`` are the times of messages that came after, oldest
    first (a sandbox touch: the newest of them is the chat's activity now). A chat without
    activity has no generated messages. Stable: the same arguments give the same messages,
    ids included, and a message keeps its id as messages are added in front of it.
    """
    base = count if spec.ts is not None else 0
    total = len(added) + base
    end = total if limit is None else min(total, offset + limit)
    return [_message_at(gen, spec, count, k, added) for k in range(offset, end)]


def _message_at(gen: Generator, spec: ChatSpec, count: int, k: int, added: tuple[int, ...]) -> Any:
    n_added = len(added)
    if k < n_added:
        ts = added[n_added - 1 - k]
        salt = 1_000_000_007 + ts * 31 + (n_added - 1 - k)  # position since generation
        return _build_message(gen, spec, ts, salt, odd=False)
    j = k - n_added
    assert spec.ts is not None
    span = (30 + _msg_hash(gen.seed, spec, 1) % 300) * 86_400  # one to eleven months
    ts = spec.ts - (j * span) // max(count, 1) - j  # strictly older as j grows
    return _build_message(gen, spec, ts, 2 + j * 131, odd=True, big=spec.index == 1 and j == 2)


def _build_message(
    gen: Generator, spec: ChatSpec, ts: int, salt: int, *, odd: bool, big: bool = False
) -> Any:
    h = _msg_hash(gen.seed, spec, salt)
    r = h % 1000
    chat = spec.jid
    from_me = (h >> 10) % 10 < 4
    n = 1000 + (h >> 14) % 9_999_000  # order numbers: 4 to 8 digits, so phrases differ
    m = 2 + (h >> 28) % 58
    script = _chat_script(spec)
    if (h >> 34) % 10 < 2:
        script = _SCRIPTS[(h >> 38) % len(_SCRIPTS)]
    texts = REPLIES if from_me else TEXTS[script]
    body: str | None = texts[(h >> 42) % len(texts)].format(n=n, m=m)
    has_media = (h >> 48) % 10 == 0
    media: dict[str, Any] | None = None
    kind = "chat"
    if has_media:
        kind, mimetype = MEDIA[(h >> 52) % len(MEDIA)]
        body = CAPTIONS[(h >> 55) % len(CAPTIONS)].format(n=n, m=m) if kind != "ptt" else ""
        media = {"url": None, "mimetype": mimetype, "filename": None} if h % 2 else None
    participant = None
    if spec.is_group and not from_me:
        j = (h >> 20) % 50
        participant = f"{gen.user_and_server(j)[0]}@c.us"
        if gen.kind(j) != "c.us":
            participant = f"{gen._phone(j, 2)[1]}@c.us"  # someone who has no chat with us
    ident = f"{'true' if from_me else 'false'}_{chat}_3EB0{h & 0xFFFFFFFFFFFFFFFF:016X}"
    if participant:
        ident += f"_{participant}"
    msg: dict[str, Any] = {
        "id": ident,
        "timestamp": ts,
        "from": ME if from_me else chat,
        "fromMe": from_me,
        "source": "app",
        "to": chat if from_me else ME,
        "participant": participant,
        "body": body,
        "hasMedia": has_media,
        "media": media,
        "ack": 3 if from_me else 1,
        "ackName": "READ" if from_me else "SERVER",
        "replyTo": None,
        "_data": {"type": kind},
    }
    if participant and (h >> 60) % 2:
        msg["author"] = participant
    if big:
        msg["body"] = ("Long message " * (BIG_BODY // 13 + 1))[:BIG_BODY]
    elif odd and r < 3:
        if r == 0:
            del msg["id"]
        elif r == 1:
            msg["timestamp"] = None
        else:
            return f"<unparsed message {ident}>"  # not an object: an engine's bad day
    elif odd and r < 8:
        msg["body"] = None
    elif odd and r < 11:
        msg["body"] = f"bell\x07 and \x1b[31mred\x1b[0m text\u202e {n}"
    return msg
