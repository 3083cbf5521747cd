"""Issue 34's acceptance run in a real headless browser (Debian's Chromium, Selenium): a counselor
signs in, sees two live sessions made through signed webhooks, gets the crisis alert when one
client writes a crisis line, takes that session over, replies and hands it back. The fake LINE API
shows what the client received; the counselor backend's calls show the model stayed silent while a
person held the session. With KOKORO_CONSOLE_SCREENSHOTS=DIR set, the run also saves the pictures
docs/console.md shows."""

import os

from conftest import quiesce
from test_console import PASSWORD, timer_round
from test_crisis import FakeBackend, in_session, make_emulator, texts
from test_humaneval_browser import browser, next_page  # noqa: F401 (a fixture)

from bot import messages as M


def wait(d, condition, timeout=15):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, ignored_exceptions=(WebDriverException,)).until(condition)


def click(d, element_id):
    """Click a button that submits a form, then wait for the page it leads to."""
    from selenium.webdriver.common.by import By

    d.execute_script("window.kokoroOld = true")
    d.find_element(By.ID, element_id).click()
    next_page(d)


def shot(d, name, size):
    where = os.environ.get("KOKORO_CONSOLE_SCREENSHOTS")
    if where:
        d.set_window_size(*size)
        d.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # the newest turns and the actions
        d.save_screenshot(os.path.join(where, name))


def test_a_counselor_gets_the_alert_takes_over_replies_and_hands_back_in_a_browser(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    backend = FakeBackend(reply="そうなんですね。もう少し聞かせてください。")
    emu = make_emulator(tmp_path, backend, quiet_gap_s=0.0)
    try:
        engine = emu.runtime.engine
        engine.console.add("sato", PASSWORD)
        base = emu.url.rsplit("/callback", 1)[0]
        u, v = "U" + "e1" * 16, "U" + "e2" * 16
        for user, line in ((u, "仕事のことで相談したいです"), (v, "家族とうまくいかなくて")):
            in_session(emu, user)
            emu.text(user, line)
            quiesce(emu)

        d = browser()
        d.get(base + "/console/")
        assert d.current_url.startswith(base + "/console/login"), "the console is behind its sign-in"
        d.find_element(By.ID, "name").send_keys("sato")
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        click(d, "signin")
        wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == 2)
        assert "家族とうまくいかなくて" in d.find_element(By.ID, "queue").text

        emu.text(v, "もう死にたい")  # a crisis line: the alert must reach the open console by itself
        quiesce(emu)
        sv = engine.store.open_session(v)["id"]
        link = wait(d, lambda d: d.find_element(By.CSS_SELECTOR, f"#alert a[data-id='{sv}']"))
        assert d.find_element(By.ID, "alert").is_displayed()
        wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "#rows tr").get_attribute("data-id") == str(sv))
        shot(d, "console-queue.png", (1100, 520))

        d.execute_script("window.kokoroOld = true")
        link.click()
        next_page(d)
        calls = len(backend.prompts)
        click(d, "take")
        assert "担当: sato" in d.find_element(By.ID, "holder").text
        emu.text(v, "誰か聞いてほしい")  # while a person holds it the model must not answer
        quiesce(emu)
        timer_round(emu)
        wait(d, lambda d: "誰か聞いてほしい" in d.find_element(By.ID, "turns").text)
        words = "相談員の佐藤です。ここにいます。いまの気持ちを、もう少し聞かせてください。"
        d.find_element(By.ID, "reply-text").send_keys(words)
        click(d, "send")
        wait(d, lambda d: words in d.find_element(By.ID, "turns").text)
        shot(d, "console-session.png", (420, 1000))
        assert len(backend.prompts) == calls, "the model generated while a person held the session"
        click(d, "handback")
        quiesce(emu)

        got = texts(emu, v)
        joined, left = M.human_joined()[0]["text"], M.human_left()[0]["text"]
        assert got.count(joined) == 1 and got.count(words) == 1 and got.count(left) == 1, got
        assert got.index(joined) < got.index(words) < got.index(left)
        assert backend.reply not in got[got.index(joined) : got.index(left)]
        assert not emu.fake.errors, emu.fake.errors
        actions = [a["action"] for a in engine.console.audit_rows(sv)]
        assert actions[:4] == ["open", "take", "open", "reply"] and "hand-back" in actions
    finally:
        emu.close()
