"""Routes of the counselor console. Every route but the sign-in form needs a signed-in counselor
(``guard``); every POST needs the login's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``). The sign-in is a server-side session: the cookie holds a random token whose
digest names a row of ``console_logins``; nothing else lives in the cookie."""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from urllib.parse import quote

from flask import Blueprint, abort, g, jsonify, make_response, redirect, render_template, request

from .. import handoff
from ..store import now
from .store import ConsoleError, ConsoleStore

log = logging.getLogger("kokoro.bot.console")
COOKIE = "kokoro_console"
OPEN = ("console.login", "console.login_post")  # reachable without signing in (the form itself)
POLL_MS = 2000
PREVIEW = 80  # characters of the client's last message in the queue
ENDED_CRISIS_S = 24 * 3600.0  # a crisis session the client ended stays in the queue this long


def make_blueprint(engine) -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
    console: ConsoleStore = engine.console
    store = engine.store

    # ------------------------------------------------------------ access
    @bp.before_request
    def guard():
        token = request.cookies.get(COOKIE)
        g.login = console.login(token)
        g.counselor = console.get(g.login["counselor_id"]) if g.login else None
        if g.counselor is not None and g.counselor["disabled"]:
            g.counselor = None
        if request.method == "POST":
            sent = request.form.get("csrf") or request.headers.get("X-CSRF-Token") or ""
            if g.login is None or not hmac.compare_digest(sent, g.login["csrf"]):
                log.warning("console POST without a valid CSRF token refused")
                abort(make_response("CSRF トークンがありません。ページを読み込み直してください。", 403))
        if request.endpoint in OPEN:
            return None
        if g.counselor is None:
            if request.path.startswith("/console/api/"):
                return jsonify(error="ログインしてください。"), 401
            return redirect(f"/console/login?next={quote(request.path)}", 303)
        console.seen(g.counselor["id"])  # a console that asks is a counselor on duty
        return None

    @bp.after_request
    def headers(resp):
        resp.headers["Cache-Control"] = "no-store"  # transcripts never sit in a browser or proxy cache
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'self'; style-src 'nonce-{g.get('csp_nonce', '')}'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        return resp

    @bp.context_processor
    def nonce():
        g.csp_nonce = g.get("csp_nonce") or secrets.token_urlsafe(16)
        return {"csp_nonce": g.csp_nonce}

    def set_cookie(resp, token: str):
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=request.is_secure, path="/console")
        return resp

    @bp.get("/login")
    def login():
        token, csrf = request.cookies.get(COOKIE), g.login["csrf"] if g.login else None
        if g.login is None:
            token, csrf = console.new_login(None)
        nxt = request.args.get("next", "/console/")
        resp = make_response(render_template("console/login.html", csrf=csrf, next=nxt, error=request.args.get("e")))
        return set_cookie(resp, token)

    @bp.post("/login")
    def login_post():
        try:
            c = console.check_password(request.form.get("name", ""), request.form.get("password", ""))
        except ConsoleError as e:
            return render_template("console/login.html", csrf=g.login["csrf"], next="/console/", error=str(e)), 401
        console.end_login(request.cookies.get(COOKIE))  # a new token after sign-in (no fixation)
        token, _ = console.new_login(c["id"])
        nxt = request.form.get("next", "")
        safe = nxt if nxt.startswith("/console/") and "//" not in nxt else "/console/"
        return set_cookie(redirect(safe, 303), token)

    @bp.post("/logout")
    def logout():
        console.audit(g.counselor, "logout")
        console.end_login(request.cookies.get(COOKIE))
        resp = redirect("/console/login", 303)
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    # ------------------------------------------------------------ the queue
    def queue() -> list[dict]:
        t = now()
        rows = store.db.query(  # live sessions, and crisis sessions that ended lately (to follow up)
            "select s.*, (select text from turns t where t.session_id = s.id and t.role = 'client' "
            "order by t.id desc limit 1) as last_text from sessions s where s.status = 'open' "
            "or (s.crisis = 1 and s.ended_at >= ?)",
            [t - ENDED_CRISIS_S],
        )
        names = counselor_names()
        out = []
        for s in rows:
            waiting = bool(s["pending_reply"]) or (s["human_asked_at"] is not None and s["held_by"] is None)
            out.append(
                {
                    "id": s["id"],
                    "crisis": bool(s["crisis"]),
                    "asked_for_person": s["human_asked_at"] is not None,
                    "answer": s["human_answer"],
                    "waiting_s": round(t - (s["last_client_at"] or s["started_at"]))
                    if waiting and not s["ended_at"]
                    else 0,
                    "length_s": round(t - s["started_at"]),
                    "last": (s["last_text"] or "")[:PREVIEW],
                    "holder": names.get(s["held_by"]),
                    "mine": s["held_by"] == g.counselor["id"],
                    "ended": s["status"] != "open",  # a crisis session the client left: raised, not live
                }
            )
        out.sort(key=lambda r: (r["ended"], not r["crisis"], not r["asked_for_person"], -r["waiting_s"], r["id"]))
        return out

    def counselor_names() -> dict[int, str]:
        return {c["id"]: c["name"] for c in console.list()}

    def me() -> dict:
        return {"name": g.counselor["name"], "role": g.counselor["role"], "csrf": g.login["csrf"]}

    @bp.get("/")
    def index():
        return render_template("console/queue.html", me=me(), sessions=queue(), poll_ms=POLL_MS)

    @bp.get("/api/queue")
    def api_queue():
        return jsonify(me={"name": g.counselor["name"]}, sessions=queue(), on_duty=len(console.on_duty()))

    # ------------------------------------------------------------ one session
    def session_or_404(sid: int) -> dict:
        sess = store.find_session(sid)
        if sess is None:
            abort(404, "この相談は削除されたか、存在しません。")
        return sess

    def transcript(sid: int) -> dict:
        sess = session_or_404(sid)
        names = counselor_names()
        by_author = {f"counselor:{cid}": name for cid, name in names.items()}

        def by(r: dict) -> str:
            if r["role"] == "client":
                return "client"
            return by_author.get(r["author"], "相談員") if r["author"] else "AI"

        turns = [
            {
                "role": r["role"],
                "by": by(r),
                "text": r["text"],
                "time": r["time"],
            }
            for r in store.turns(sid)
        ]
        return {
            "id": sid,
            "open": sess["status"] == "open",
            "crisis": bool(sess["crisis"]),
            "holder": names.get(sess["held_by"]),
            "mine": sess["held_by"] == g.counselor["id"],
            "asked_for_person": sess["human_asked_at"] is not None,
            "turns": turns,
            "draft": engine.drafts.get(sid),
        }

    @bp.get("/s/<int:sid>")
    def session_page(sid: int):
        data = transcript(sid)
        console.audit(g.counselor, "open", sid)  # every opening of a transcript: who, which, when
        return render_template(
            "console/session.html", me=me(), s=data, nonce=uuid.uuid4().hex, poll_ms=POLL_MS, note=request.args.get("m")
        )

    @bp.get("/api/s/<int:sid>")
    def api_session(sid: int):
        return jsonify(transcript(sid))  # the page's own refresh: its opening was audited

    def act(sid: int, fn, done: str):
        session_or_404(sid)
        try:
            fn()
            note = done
        except ConsoleError as e:
            console.audit(g.counselor, f"refused:{request.path.rsplit('/', 1)[-1]}", sid)
            note = str(e)
            if request.headers.get("X-Requested-With") == "fetch":
                return jsonify(ok=False, message=note), 409
        if request.headers.get("X-Requested-With") == "fetch":
            return jsonify(ok=True, message=note)
        return redirect(f"/console/s/{sid}?m={quote(note)}", 303)

    @bp.post("/s/<int:sid>/take")
    def take(sid: int):
        return act(sid, lambda: handoff.take_over(engine, console, sid, g.counselor), "引き継ぎました。")

    @bp.post("/s/<int:sid>/reply")
    def reply(sid: int):
        text, nonce = request.form.get("text", ""), request.form.get("nonce") or uuid.uuid4().hex
        return act(sid, lambda: handoff.reply(engine, console, sid, g.counselor, text, nonce), "送信しました。")

    @bp.post("/s/<int:sid>/handback")
    def hand_back(sid: int):
        return act(sid, lambda: handoff.hand_back(engine, console, sid, g.counselor), "AIに戻しました。")

    @bp.post("/s/<int:sid>/end")
    def end(sid: int):
        return act(sid, lambda: handoff.end(engine, console, sid, g.counselor), "相談を終了しました。")

    @bp.post("/s/<int:sid>/draft")
    def draft(sid: int):
        def ask():
            if store.session(sid)["status"] != "open":
                raise handoff.NotOpen("この相談はすでに終了しました。")
            engine.request_draft(sid)
            console.audit(g.counselor, "draft", sid)

        return act(sid, ask, "AIの案を作成しています。")

    @bp.get("/app.js")
    def script():
        from pathlib import Path

        js = (Path(__file__).with_name("console.js")).read_text(encoding="utf-8")
        return js, 200, {"Content-Type": "text/javascript; charset=utf-8"}

    @bp.errorhandler(404)
    def gone(e):
        if request.path.startswith("/console/api/"):
            return jsonify(error=e.description, gone=True), 404
        return render_template("console/gone.html", message=e.description), 404

    return bp
