"""Issue 34's rich menu: drawn by the project, checked against LINE's rules, created through the
(fake) Messaging API whose spec validation sees every request; per user while a person holds the
session."""

import re

import pytest
from conftest import NO_FONT, quiesce
from test_console import Console
from test_crisis import FakeBackend, in_session, make_emulator, texts

from bot import messages as M
from bot import richmenu


@pytest.fixture
def font():
    try:
        return richmenu.find_font()
    except richmenu.RichMenuError:
        pytest.skip(f"{NO_FONT}: install Debian's fonts-noto-cjk (.ci/run does)")


@pytest.fixture
def emu(tmp_path):
    e = make_emulator(tmp_path, FakeBackend())
    yield e
    e.close()


def test_setup_creates_both_menus_through_the_api_and_sets_the_default(emu, font):
    ids = richmenu.setup(emu.settings, emu.runtime.engine.store, font)
    fake = emu.fake
    assert not fake.errors, fake.errors  # every request passed LINE's OpenAPI spec
    assert set(ids) == {"default", "held"} and set(fake.richmenus) == set(ids.values())
    for kind, rid in ids.items():
        ctype, image = fake.richmenus[rid]["image"]
        assert ctype == "image/png"
        richmenu.check(image, fake.richmenus[rid]["menu"])  # what LINE got obeys its rules
        labels = [a["action"]["label"] for a in fake.richmenus[rid]["menu"]["areas"]]
        assert labels == [b[0] for b in richmenu.MENUS[kind]["buttons"]]
    assert any(r["path"] == f"/v2/bot/user/all/richmenu/{ids['default']}" for r in fake.records)
    validated = [r for r in fake.records if r["path"] == "/v2/bot/richmenu/validate"]
    assert len(validated) == 2


def test_every_button_of_the_menu_does_what_it_says(emu, font):
    u = "U" + "f1" * 16
    in_session(emu, u)
    for label, data in richmenu.MENUS["default"]["buttons"]:
        if data in (M.START, M.END):
            continue
        emu.postback(u, data)
        quiesce(emu)
    got = texts(emu, u)
    assert M.human_requested(False, None)[0]["text"] in got
    assert M.contacts()[0]["text"] in got
    assert M.confirm_delete()[0]["text"] in got


def test_a_held_session_shows_its_own_menu_until_it_is_handed_back(emu, font):
    ids = richmenu.setup(emu.settings, emu.runtime.engine.store, font)
    u = "U" + "f2" * 16
    in_session(emu, u)
    emu.text(u, "聞いてほしい")
    quiesce(emu)
    sid = emu.runtime.engine.store.open_session(u)["id"]
    sato = Console(emu, "sato")
    sato.login()
    sato.post(f"/console/s/{sid}/take")
    assert emu.fake.user_menus.get(u) == ids["held"]
    sato.post(f"/console/s/{sid}/handback")
    assert u not in emu.fake.user_menus
    sato.post(f"/console/s/{sid}/take")
    emu.text(u, "終了")  # the client ends it while held: their menu goes back too
    quiesce(emu)
    assert u not in emu.fake.user_menus


def test_lines_rules_refuse_what_line_would(font):
    import io

    from PIL import Image

    good = richmenu.draw("default", font)
    menu = richmenu.request("default")
    richmenu.check(good, menu)

    def png(w, h):
        out = io.BytesIO()
        Image.new("RGB", (w, h)).save(out, "PNG")
        return out.getvalue()

    cases = {
        "size": (png(700, 300), dict(menu, size={"width": 700, "height": 300})),
        "ratio": (png(1200, 1000), dict(menu, size={"width": 1200, "height": 1000})),
        "differs": (png(2500, 1686), menu),
        "outside": (
            good,
            dict(
                menu,
                areas=menu["areas"] + [dict(menu["areas"][0], bounds={"x": 2400, "y": 0, "width": 200, "height": 10})],
            ),
        ),
        "bytes": (good + b"\0" * (1 << 20), menu),
        "chatBarText": (good, dict(menu, chatBarText="とても長いメニューの名前ですよね")),
    }
    for word, (image, m) in cases.items():
        with pytest.raises(richmenu.RichMenuError, match=re.escape(word) if word != "bytes" else "1 MB"):
            richmenu.check(image, m)


def test_without_a_japanese_font_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(richmenu, "FONT_PATHS", ())
    monkeypatch.setenv("PATH", str(tmp_path))  # no fc-list either
    with pytest.raises(richmenu.RichMenuError, match="fonts-noto-cjk"):
        richmenu.find_font()
