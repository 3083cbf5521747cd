"""LINE rich menus, drawn here and created through the Messaging API by
`python -m bot richmenu setup`: the client's menu (相談を始める · 人と話したい · 相談窓口 · 終了 · 削除)
and, per user while a console counselor holds their session, a menu that says so. Each image is
checked against LINE's rules before it is sent (size, ratio, bytes, format, areas inside it)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from . import messages as M
from .store import now

log = logging.getLogger("kokoro.bot.richmenu")
SIZE = (2500, 843)  # LINE's large compact size
MAX_BYTES = 1024 * 1024
MENUS = {
    "default": {
        "banner": None,
        "buttons": [
            ("相談を始める", M.START),
            ("人と話したい", M.HUMAN),
            ("相談窓口", M.CONTACTS),
            ("終了", M.END),
            ("削除", M.DELETE_ASK),
        ],
    },
    "held": {
        "banner": "いま、人の相談員と話しています",
        "buttons": [("相談窓口", M.CONTACTS), ("終了", M.END), ("削除", M.DELETE_ASK)],
    },
}
FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
)


class RichMenuError(ValueError):
    """A menu LINE would refuse, or one that cannot be drawn here; the message says what to do."""


def find_font(font: str | None = None) -> str:
    """A font with Japanese glyphs: ``font``, else fontconfig's choice for Japanese, else known paths."""
    if font:
        if not Path(font).is_file():
            raise RichMenuError(f"font {font} not found")
        return font
    for p in FONT_PATHS:
        if Path(p).is_file():
            return p
    if shutil.which("fc-list"):  # any font fontconfig knows to cover Japanese
        out = subprocess.run(["fc-list", ":lang=ja", "-f", "%{file}\n"], capture_output=True, text=True).stdout
        found = sorted(p for p in out.splitlines() if Path(p).is_file())
        if found:
            return found[0]
    raise RichMenuError(
        "no Japanese font to draw the menu with: install one (Debian/Ubuntu: apt-get install fonts-noto-cjk) "
        "or pass --font PATH"
    )


def layout(kind: str) -> list[tuple[tuple[int, int, int, int], str | None, str]]:
    """(x, y, width, height), postback data (None: not tappable), label — for each box of the menu."""
    w, h = SIZE
    spec = MENUS[kind]
    rows = [spec["buttons"][:3], spec["buttons"][3:]] if spec["banner"] is None else [None, spec["buttons"]]
    boxes = []
    for r, row in enumerate(rows):
        y, rh = r * (h // 2), h // 2 if r == 0 else h - h // 2
        if row is None:
            boxes.append(((0, y, w, rh), None, spec["banner"]))
            continue
        for i, (label, data) in enumerate(row):
            x0, x1 = w * i // len(row), w * (i + 1) // len(row)
            boxes.append(((x0, y, x1 - x0, rh), data, label))
    return boxes


def request(kind: str) -> dict:
    """The rich menu object for the Messaging API (createRichMenu)."""
    w, h = SIZE
    return {
        "size": {"width": w, "height": h},
        "selected": kind == "held",  # open while a person holds the session, so the client sees it
        "name": f"kokoro-{kind}",
        "chatBarText": "メニュー",
        "areas": [
            {
                "bounds": dict(zip(("x", "y", "width", "height"), box)),
                "action": {"type": "postback", "label": label, "data": data, "displayText": label},
            }
            for box, data, label in layout(kind)
            if data is not None
        ],
    }


def draw(kind: str, font: str | None = None) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    path = find_font(font)
    img = Image.new("RGB", SIZE, "#f4f8f5")
    d = ImageDraw.Draw(img)
    for (x, y, w, h), data, label in layout(kind):
        fill = "#24563f" if data is None else "#c62828" if data == M.CONTACTS else "#ffffff"
        ink = "#ffffff" if fill != "#ffffff" else "#1d3b2c"
        d.rectangle((x + 8, y + 8, x + w - 8, y + h - 8), fill=fill, outline="#24563f", width=6)
        size = 110 if data is not None else 100
        f = ImageFont.truetype(path, size)
        while d.textlength(label, font=f) > w - 80 and size > 40:
            size -= 6
            f = ImageFont.truetype(path, size)
        d.text((x + w / 2, y + h / 2), label, font=f, fill=ink, anchor="mm")
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def check(image: bytes, menu: dict) -> None:
    """LINE's rules for a rich menu and its image; raises RichMenuError naming every problem."""
    from PIL import Image

    problems = []
    try:
        img = Image.open(io.BytesIO(image))
        fmt, (w, h) = img.format, img.size
    except Exception:
        raise RichMenuError("the image is not a PNG or JPEG LINE can read") from None
    if fmt not in ("PNG", "JPEG"):
        problems.append(f"format {fmt} (LINE takes PNG or JPEG)")
    if not 800 <= w <= 2500 or h < 250:
        problems.append(f"size {w}x{h} (width 800–2500, height at least 250)")
    if h and w / h < 1.45:
        problems.append(f"ratio {w / h:.2f} (width/height at least 1.45)")
    if len(image) > MAX_BYTES:
        problems.append(f"{len(image)} bytes (at most 1 MB)")
    if (menu["size"]["width"], menu["size"]["height"]) != (w, h):
        problems.append("the menu's size differs from its image's")
    if len(menu.get("chatBarText", "")) > 14 or len(menu.get("name", "")) > 300:
        problems.append("chatBarText over 14 characters or name over 300")
    if not 1 <= len(menu["areas"]) <= 20:
        problems.append(f"{len(menu['areas'])} areas (1 to 20)")
    for i, a in enumerate(menu["areas"]):
        b, act = a["bounds"], a["action"]
        if b["x"] < 0 or b["y"] < 0 or b["x"] + b["width"] > w or b["y"] + b["height"] > h:
            problems.append(f"area {i} reaches outside the image")
        if len(act.get("label", "")) > 20 or len(act.get("data", "")) > 300:
            problems.append(f"area {i}: label over 20 characters or data over 300")
    if problems:
        raise RichMenuError("rich menu refused: " + "; ".join(problems))


def data_host(api_host: str) -> str:
    """Images go to api-data.line.me; a test or emulator API serves both on its own host."""
    return "https://api-data.line.me" if api_host.rstrip("/") == "https://api.line.me" else api_host.rstrip("/")


def setup(settings, store, font: str | None = None) -> dict:
    """Create both menus (validated by LINE first), upload their images, make the client's the
    default, and remember their ids in the database (table ``richmenus``)."""
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, RichMenuRequest

    api = MessagingApi(ApiClient(Configuration(access_token=settings.access_token, host=settings.api_host)))
    ids = {}
    for kind in MENUS:
        image, menu = draw(kind, font), request(kind)
        check(image, menu)
        body = RichMenuRequest.from_dict(menu)
        api.validate_rich_menu_object(body, _request_timeout=10)
        rid = api.create_rich_menu(body, _request_timeout=10).rich_menu_id
        req = urllib.request.Request(
            f"{data_host(settings.api_host)}/v2/bot/richmenu/{rid}/content",
            data=image,
            headers={"Authorization": f"Bearer {settings.access_token}", "Content-Type": "image/png"},
        )
        urllib.request.urlopen(req, timeout=30).close()
        ids[kind] = rid
    api.set_default_rich_menu(ids["default"], _request_timeout=10)
    for kind, rid in ids.items():
        store.db["richmenus"].upsert({"kind": kind, "id": rid, "created_at": now()}, pk="kind")
    return ids


def menu_id(store, kind: str) -> str | None:
    if not store.db["richmenus"].exists():
        return None
    rows = list(store.db["richmenus"].rows_where("kind = ?", [kind]))
    return rows[0]["id"] if rows else None


def link_user(engine, uid: str, kind: str | None) -> None:
    """While a person holds the session the client sees the 'held' menu; otherwise the default.
    Nothing happens until `python -m bot richmenu setup` has made the menus."""
    held = menu_id(engine.store, "held")
    if held is None:
        return
    if kind == "held":
        engine.api.link_menu(uid, held)
    else:
        engine.api.unlink_menu(uid)


def main(args, settings, store) -> int:
    """python -m bot richmenu setup|image"""
    try:
        if args.action == "image":
            out = Path(args.out or ".")
            out.mkdir(parents=True, exist_ok=True)
            for kind in MENUS:
                image = draw(kind, args.font)
                check(image, request(kind))
                (out / f"richmenu-{kind}.png").write_bytes(image)
                (out / f"richmenu-{kind}.json").write_text(json.dumps(request(kind), ensure_ascii=False, indent=1))
            print(f"wrote the menus' images and objects to {out}")
            return 0
        if not settings.access_token:
            raise RichMenuError("set LINE_CHANNEL_ACCESS_TOKEN (from the LINE Developers console) to create menus")
        ids = setup(settings, store, args.font)
        print(f"rich menus created: {ids} (the default is set for every user)")
        return 0
    except RichMenuError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
