"""Three raters answer the human pairwise evaluation in a real headless browser (Debian's
Chromium, driven by Selenium) against `python -m evaluation humaneval serve` on loopback; one
stops half-way and resumes in a new browser; then `humaneval report` shows the majority result,
Fleiss' kappa and the Figure 5-style chart. Skipped, with the reason, where no browser is
installed (.ci/run installs it)."""

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest
from conftest import NO_BROWSER, REPO, free_port
from test_humaneval import cli, prepare_folder

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip(f"{NO_BROWSER}: install Debian's chromium and chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opened = []

    def new():
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in (
            "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
            "--disable-component-update --disable-sync --disable-dev-shm-usage --window-size=390,844"  # a phone
        ).split():
            o.add_argument(a)
        d = webdriver.Chrome(service=Service(DRIVER), options=o)
        d.set_page_load_timeout(30)
        opened.append(d)
        return d

    yield new
    for d in opened:
        d.quit()


@pytest.fixture
def served(tmp_path, kokoro_dir):
    folder, out = prepare_folder(tmp_path, kokoro_dir)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "evaluation", "humaneval", "serve", str(folder), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:  # wait until the server accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "humaneval serve did not start"
            time.sleep(0.05)
    yield folder, out["raters"], f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def sign_in(d, url, code):
    """Sign in, then wait for the page it leads to (an item, the end, or the error)."""
    from selenium.webdriver.common.by import By

    d.get(url + "/")
    d.find_element(By.ID, "code").send_keys(code)
    d.execute_script("window.kokoroOld = true")
    d.find_element(By.ID, "signin").click()
    next_page(d)


def progress(d) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.ID, "progress").text


def answer(d, comparison, choose) -> None:
    """Answer the item on the page with ``choose(item) -> source name or 'tie'``, then wait for
    the page that follows (the old one gone, the next item or the end shown)."""
    from selenium.webdriver.common.by import By

    item = comparison[d.find_element(By.NAME, "item").get_attribute("value")]
    want = choose(item)
    button = "tie" if want == "tie" else "AB"[item["shown"].index(want)]
    d.execute_script("window.kokoroOld = true")  # a new document will not have it
    d.find_element(By.ID, f"choice-{button}").click()
    next_page(d)


def next_page(d) -> None:
    """Wait until the browser shows a new, fully loaded document (not the one marked kokoroOld)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.kokoroOld && document.readyState === 'complete'")
    )


def test_three_raters_answer_in_a_browser_and_the_report_shows_figure_5(browser, served):
    from selenium.webdriver.common.by import By

    folder, codes, url = served
    items = {x["id"]: x for x in json.loads((folder / "comparison.json").read_text(encoding="utf-8"))["items"]}
    policies = [
        lambda it: "Human",
        lambda it: "fake" if it["history"] == 0 else "Human",
        lambda it: "tie",
    ]
    d = browser()
    sign_in(d, url, "not-a-code")
    assert "評価者コードが違います" in d.find_element(By.ID, "error").text
    for code, choose in zip(codes, policies):
        d = browser()  # each rater their own browser
        sign_in(d, url, code)
        assert progress(d) == "回答済み 0 / 4"
        page = d.find_element(By.TAG_NAME, "body").text
        assert "応答 A" in page and "応答 B" in page and "fake" not in page and "Human" not in page
        answer(d, items, choose)
        assert progress(d) == "回答済み 1 / 4"  # saved, and shown
        answer(d, items, choose)
        if choose is policies[2]:  # this rater stops half-way: a new browser resumes where they were
            d.quit()
            d = browser()
            sign_in(d, url, code)
            assert progress(d) == "回答済み 2 / 4"
        while not d.find_elements(By.ID, "done"):
            answer(d, items, choose)
        assert "4 問すべての回答が保存されています" in d.find_element(By.TAG_NAME, "body").text

    r = cli("report", str(folder), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["raters"] == {c: 4 for c in codes}
    p = rep["pairs"][0]
    # history 0: fake / Human / tie -> tie; the other three: Human, Human, tie -> Human wins
    assert (p["win"], p["tie"], p["lose"]) == (0, 1, 3)
    # by hand: rows [1,1,1] and 3 x [0,2,1]; P = (0 + 3 x 1/3) / 4 = 1/4; p = (1, 7, 4) / 12
    pe = (1 + 49 + 16) / 144
    assert p["fleiss_kappa"] == pytest.approx((1 / 4 - pe) / (1 - pe))
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "| fake vs Human | 0 | 1 | 3 | 4 / 4 | 3 | -0.385 |" in md
    assert (folder / "figure5.png").stat().st_size > 5000
