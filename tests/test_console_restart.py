"""Issue 34 under a fault: kill -9 (the whole gunicorn process group, as the Procfile runs it) while
a console counselor holds a session. After the restart the session is still held, the counselor's
sign-in still works, nothing the client wrote is lost, nothing is sent twice, and the model has
generated nothing for the held session (the fake OpenAI server counts its calls)."""

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid

from conftest import REPO, free_port
from fake_openai import FakeOpenAI
from test_reliability import _up, wait_until

from bot import messages as M
from bot.emulator.client import event, sign
from bot.emulator.fake_api import FakeLine

PASSWORD = "correct-horse-battery"


class Bot:
    def __init__(self, tmp_path, api, model):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            LINE_CHANNEL_SECRET="sec",
            LINE_CHANNEL_ACCESS_TOKEN="tok",
            LINE_API_HOST=api,
            KOKORO_BOT_DB=str(tmp_path / "bot.sqlite3"),
            KOKORO_BACKEND="openai",
            KOKORO_OPENAI_URL=model,
            KOKORO_SCORER=str(tmp_path / "none"),
            KOKORO_TICK="0.1",
            KOKORO_QUIET_GAP="0.2",
            PORT=str(self.port),
        )
        self.proc = None

    def start(self):
        procfile = (REPO / "Procfile").read_text().split(":", 1)[1].strip().replace("${PORT:-5000}", str(self.port))
        cmd = [sys.executable, "-m", "gunicorn"] + [c.replace("0.0.0.0", "127.0.0.1") for c in procfile.split()[1:]]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until(lambda: _up(self.url), 60, "gunicorn up")

    def kill9(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def event(self, fake, user, type_, **extra):
        ev = event(user, type_, fake, **extra)
        body = json.dumps({"destination": "x", "events": [ev]}, ensure_ascii=False).encode()
        req = urllib.request.Request(self.url + "/callback", data=body, headers={"X-Line-Signature": sign("sec", body)})
        assert urllib.request.urlopen(req, timeout=10).status == 200

    def text(self, fake, user, text):
        self.event(fake, user, "message", message={"id": uuid.uuid4().hex[:16], "type": "text", "text": text})


class Browser:
    """A counselor's browser: a cookie jar and the page's CSRF token."""

    def __init__(self, bot):
        self.bot, self.jar = bot, http.cookiejar.CookieJar()
        self.open = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar)).open
        self.csrf = None

    def login(self):
        page = self.open(self.bot.url + "/console/login", timeout=10).read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"name": "sato", "password": PASSWORD, "csrf": token}).encode()
        queue = self.open(self.bot.url + "/console/login", data=form, timeout=10).read().decode()
        self.csrf = re.search(r'data-csrf="([^"]+)"', queue).group(1)

    def get(self, path):
        return json.loads(self.open(self.bot.url + path, timeout=10).read())

    def post(self, path, **data):
        form = urllib.parse.urlencode(dict(data, csrf=self.csrf)).encode()
        req = urllib.request.Request(self.bot.url + path, data=form, headers={"X-Requested-With": "fetch"})
        return json.loads(self.open(req, timeout=10).read())


def test_kill_9_while_a_session_is_held_loses_nothing_and_sends_nothing_twice(tmp_path):
    fake, model = FakeLine("tok"), FakeOpenAI()
    bot = Bot(tmp_path, fake.start(), model.url)
    added = subprocess.run(
        [sys.executable, "-m", "bot", "counselor", "add", "sato", "--password-stdin", "--db", bot.env["KOKORO_BOT_DB"]],
        input=PASSWORD + "\n",
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    u = "U" + "9" * 32
    try:
        bot.start()
        bot.event(fake, u, "follow", follow={"isUnblocked": False})
        bot.event(fake, u, "postback", postback={"data": M.CONSENT})
        bot.text(fake, u, "こんにちは")
        fake.wait_for(3, 20, u)
        bot.text(fake, u, "仕事がつらいです")
        assert len(fake.wait_for(4, 20, u)) == 4 and len(model.requests) == 1  # the model's one reply

        sato = Browser(bot)
        sato.login()
        sid = sato.get("/console/api/queue")["sessions"][0]["id"]
        assert sato.post(f"/console/s/{sid}/take")["ok"]
        bot.text(fake, u, "聞いてもらえますか")
        wait_until(lambda: "聞いてもらえますか" in str(sato.get(f"/console/api/s/{sid}")["turns"]), 20, "stored")
        fake.wait_for(5, 20, u)  # the join notice

        bot.kill9()
        bot.start()

        bot.text(fake, u, "まだいますか")  # written after the restart, to a session still held
        view = sato.get(f"/console/api/s/{sid}")  # the sign-in survived the restart too
        assert view["holder"] == "sato" and view["mine"]
        wait_until(lambda: "まだいますか" in str(sato.get(f"/console/api/s/{sid}")["turns"]), 20, "stored")
        assert sato.post(f"/console/s/{sid}/reply", text="はい、ここにいます。", nonce="after-restart")["ok"]
        fake.wait_for(6, 20, u)
        assert len(model.requests) == 1, "the model generated for a held session"
        assert sato.post(f"/console/s/{sid}/handback")["ok"]
        fake.wait_for(7, 20, u)  # the notice; what the client wrote was answered by the person
        bot.text(fake, u, "ありがとう")
        got = fake.wait_for(8, 20, u)  # the model answers again
        texts = [m["text"] for m in got]
        for once in (M.human_joined()[0]["text"], "はい、ここにいます。", M.human_left()[0]["text"]):
            assert texts.count(once) == 1, (once, texts)
        assert len(model.requests) == 2
        client = [t["text"] for t in sato.get(f"/console/api/s/{sid}")["turns"] if t["role"] == "client"]
        assert client == ["こんにちは", "仕事がつらいです", "聞いてもらえますか", "まだいますか", "ありがとう"], client
    finally:
        if bot.proc and bot.proc.poll() is None:
            os.killpg(bot.proc.pid, signal.SIGKILL)
        fake.stop()
        model.close()
