"""`humaneval serve`: the raters' web app (Flask). A rater signs in with a code from raters.txt,
reads a history and two responses (sources hidden, order random), and answers which is more
suitable; each answer is saved when given, and signing in again resumes at the first unanswered
item of the rater's own order. ``?at=K`` revisits the K-th item to change an answer."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, abort, redirect, render_template, request, session, url_for

from .answers import CHOICES, Folder


def secret_key(folder: Path) -> str:
    """Kept beside the answers, so a restarted server keeps its raters signed in."""
    p = folder / ".secret"
    if not p.is_file():
        p.write_text(secrets.token_hex(32), encoding="utf-8")
        p.chmod(0o600)
    return p.read_text(encoding="utf-8").strip()


def create_app(folder: str | Path, test_config: dict | None = None) -> Flask:
    data = Folder(folder)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key(data.path), SESSION_COOKIE_SAMESITE="Lax")
    app.config.update(test_config or {})
    app.extensions["humaneval"] = data

    def rater() -> str | None:
        r = session.get("rater")
        return r if r in data.raters else None

    def check_csrf() -> None:
        if not secrets.compare_digest(request.form.get("csrf", ""), session.get("csrf", "-")):
            abort(400, "the form expired: reload the page")

    @app.get("/")
    def index():
        return redirect(url_for("item")) if rater() else render_template("signin.html", error=None)

    @app.post("/signin")
    def signin():
        code = request.form.get("code", "").strip()
        if code not in data.raters:
            return render_template("signin.html", error="評価者コードが違います。もう一度お確かめください。"), 403
        session.clear()
        session.update(rater=code, csrf=secrets.token_hex(16))
        return redirect(url_for("item"))

    @app.post("/signout")
    def signout():
        session.clear()
        return redirect(url_for("index"))

    @app.get("/item")
    def item():
        r = rater()
        if not r:
            return redirect(url_for("index"))
        order, done = data.order(r), data.answered(r)
        at = request.args.get("at", type=int)
        if at is None:
            at = next((k for k, i in enumerate(order) if i not in done), None)
            if at is None:
                return render_template("done.html", total=len(order), rater=r, csrf=session["csrf"])
        if not 0 <= at < len(order):
            abort(404)
        it = data.items[order[at]]
        h = data.comparison["histories"][it["history"]]
        shown = [h["responses"][s] for s in it["shown"]]
        return render_template(
            "item.html",
            at=at,
            total=len(order),
            answered=len(done),
            item=it,
            history=h["history"],
            responses=list(zip(("A", "B"), shown)),
            previous=done.get(it["id"]),
            csrf=session["csrf"],
            rater=r,
        )

    @app.post("/answer")
    def answer():
        r = rater()
        if not r:
            return redirect(url_for("index"))
        check_csrf()
        choice, item_id = request.form.get("choice", ""), request.form.get("item", "")
        if choice not in CHOICES or item_id not in data.items:
            abort(400, "unknown item or choice")
        data.save(r, item_id, choice)
        return redirect(url_for("item"))

    return app
