"""The README's screenshots of the agent page, taken the way the browser tests drive it.

    make screenshots        # installs fonts for every script, then runs this

Builds a 6,000-chat index (two labelled instances) in a real Meilisearch, serves the page
and drives headless Chromium. Writes docs/screenshots/*.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.agent_page import agent_world, documents  # noqa: E402
from tests.browser import Browser  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def settle(b: Browser) -> None:
    b.wait_for("['results','empty','error'].includes(document.body.dataset.state)")
    time.sleep(0.3)  # the last frame, and the fonts


def type_into(b: Browser, text: str) -> None:
    b.evaluate("(() => { const q = document.getElementById('q'); q.focus(); q.select(); })()")
    b.insert_text(text)
    b.wait_for(
        f"window.explorerDebug.state.q === {text!r} && !document.body.classList.contains('busy')"
    )
    time.sleep(0.3)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="shots-") as tmp, agent_world(6000, Path(tmp)) as w:
        docs = documents(w["meili"], w["cfg"].meilisearch.index)
        person = next(
            d for d in docs
            if d["name"] and d["name"].isascii() and " " in d["name"] and d.get("phone")
            and len(d["name"].split()[-1]) >= 6
        )  # fmt: skip
        first, last = person["name"].split()[0], person["name"].split()[-1]
        misspelt = f"{first.lower()} {last[:2]}{last[3]}{last[2]}{last[4:]}".lower()
        import phonenumbers

        national = phonenumbers.format_number(
            phonenumbers.parse(person["phone"]), phonenumbers.PhoneNumberFormat.NATIONAL
        )  # "(202) 221-5861", "0123 456 7890": as an agent would type it
        url = w["page"].url
        with Browser(1400, 900) as b:
            b.navigate(f"{url}#key={w['key']}")
            settle(b)
            type_into(b, misspelt)
            b.screenshot(OUT / "agent-search.png")
            b.navigate(f"{url}?type=group&inactive=90&sort=last_activity:desc")
            settle(b)
            b.screenshot(OUT / "agent-zombie-groups.png")
            b.navigate(f"{url}#key={w['meili'].master_key}")
            b.wait_for("document.getElementById('sign-in-error').textContent")
            b.screenshot(OUT / "agent-admin-key-refused.png")
        with Browser(360, 760) as b:
            b.resize(360, 760, mobile=True)
            b.navigate(f"{url}#key={w['key']}")
            settle(b)
            type_into(b, national)
            b.screenshot(OUT / "agent-phone-mobile.png")
    messages_shots()
    for shot in sorted(OUT.glob("*.png")):
        print(shot.relative_to(ROOT))


def messages_shots() -> None:
    """Message search on the page: the small world of tests/messages_world.py, a key on the
    chats index and its messages index, the door with messages on."""
    import meilisearch

    from explorer.config import MeiliSettings
    from explorer.dev.meili_server import MeiliServer
    from explorer.doors.serve import AgentPage
    from explorer.records.messages import messages_index
    from tests import messages_world

    with tempfile.TemporaryDirectory(prefix="shots-") as tmp, MeiliServer(Path(tmp)) as meili:
        messages_world.build(meili.url, meili.master_key, "chats")
        master = meilisearch.Client(meili.url, meili.master_key)
        key = master.create_key({
            "actions": ["search", "indexes.get", "stats.get", "version"],
            "indexes": ["chats", messages_index("chats")], "expiresAt": None,
        }).key  # fmt: skip
        page = AgentPage(MeiliSettings(url=meili.url, index="chats"), port=0, messages=True)
        page.start()
        try:
            with Browser(1400, 900) as b:
                b.navigate(f"{page.url}#key={key}")
                settle(b)
                type_into(b, "order")
                b.screenshot(OUT / "agent-messages.png")
                b.click("#messages li:nth-child(3)")
                b.wait_for("!document.getElementById('message-chat').hidden")
                time.sleep(0.3)
                b.screenshot(OUT / "agent-message-chat.png")
        finally:
            page.stop()


if __name__ == "__main__":
    main()
