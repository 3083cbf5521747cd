"""The console's tables beside the bot's (same SQLite file): counselors, their logins (server-side
sessions), and the audit trail. No counseling text is kept here: the audit rows say who did what
to which session, and when."""

from __future__ import annotations

import hashlib
import secrets

from ..store import Store, now

ROLES = ("counselor", "supervisor")
MAX_FAILURES, LOCKOUT_S = 5, 900.0  # five wrong passwords in a row lock the account for 15 minutes
LOGIN_TTL_S, ANON_TTL_S = 12 * 3600.0, 3600.0  # a signed-in console lasts a shift; a login form an hour
ON_DUTY_S = 60.0  # a counselor whose console asked for the queue this recently is on duty


class ConsoleError(Exception):
    """Something a counselor or an operator asked for that cannot be done; the message says why."""


class UnknownCounselor(ConsoleError):
    pass


class LockedOut(ConsoleError):
    pass


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()  # a stolen database holds no usable cookie


class ConsoleStore:
    def __init__(self, store: Store):
        self.store = store
        t = store.db.table
        if not t("counselors").exists():
            t("counselors").create(
                {
                    "id": int,
                    "name": str,
                    "password_hash": str,
                    "role": str,
                    "disabled": int,
                    "failures": int,
                    "locked_until": float,
                    "created_at": float,
                    "last_seen": float,
                },
                pk="id",
            )
            t("counselors").create_index(["name"], unique=True)
        if not t("console_logins").exists():
            t("console_logins").create(
                {"token": str, "counselor_id": int, "csrf": str, "created_at": float, "expires_at": float}, pk="token"
            )
        if not t("audit").exists():
            t("audit").create(
                {"id": int, "at": float, "counselor_id": int, "counselor": str, "action": str, "session_id": int},
                pk="id",
            )
            t("audit").create_index(["session_id"])

    @property
    def db(self):
        return self.store.db

    # ------------------------------------------------------------ accounts (python -m bot counselor …)
    def add(self, name: str, password: str, role: str = "counselor") -> int:
        from werkzeug.security import generate_password_hash

        if role not in ROLES:
            raise ConsoleError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not name or len(name) > 64 or any(c.isspace() for c in name):
            raise ConsoleError("a counselor name is 1 to 64 characters without spaces")
        if len(password) < 10:
            raise ConsoleError("a console password needs at least 10 characters")
        if self.db["counselors"].count_where("name = ?", [name]):
            raise ConsoleError(f"a counselor named {name} exists; pick another name or disable that one")
        row = {"name": name, "password_hash": generate_password_hash(password), "role": role, "disabled": 0}
        return self.db["counselors"].insert(dict(row, failures=0, created_at=now())).last_pk

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        c = self.by_name(name)
        if c is None:
            raise UnknownCounselor(f"no counselor named {name}; `python -m bot counselor list` shows them")
        with self.store.lock:
            self.db["counselors"].update(c["id"], {"disabled": int(disabled)})
            if disabled:  # signed out everywhere at once
                self.db.execute("delete from console_logins where counselor_id = ?", [c["id"]])

    def list(self) -> list[dict]:
        return list(self.db["counselors"].rows_where(order_by="id"))

    def by_name(self, name: str) -> dict | None:
        rows = list(self.db["counselors"].rows_where("name = ?", [name], limit=1))
        return rows[0] if rows else None

    def get(self, cid: int | None) -> dict | None:
        rows = list(self.db["counselors"].rows_where("id = ?", [cid], limit=1)) if cid is not None else []
        return rows[0] if rows else None

    def on_duty(self) -> list[dict]:
        return list(
            self.db["counselors"].rows_where("disabled = 0 and last_seen >= ?", [now() - ON_DUTY_S], order_by="id")
        )

    def seen(self, cid: int) -> None:
        self.db.execute("update counselors set last_seen = ? where id = ?", [now(), cid])

    # ------------------------------------------------------------ signing in
    def check_password(self, name: str, password: str) -> dict:
        """The counselor for this name and password; raises LockedOut or UnknownCounselor (the same
        message whether the name or the password was wrong). Counts failures and locks the account
        for LOCKOUT_S after MAX_FAILURES in a row."""
        from werkzeug.security import check_password_hash

        c = self.by_name(name)
        t = now()
        if c is not None and (c["locked_until"] or 0) > t:
            self.audit(c, "login-locked")
            raise LockedOut("too many failed sign-ins: this account is locked for a while")
        if c is None or c["disabled"] or not check_password_hash(c["password_hash"], password):
            if c is not None:
                with self.store.lock:
                    failures = (c["failures"] or 0) + 1
                    lock = t + LOCKOUT_S if failures >= MAX_FAILURES else None
                    self.db["counselors"].update(
                        c["id"], {"failures": 0 if lock else failures, "locked_until": lock or c["locked_until"]}
                    )
                self.audit(c, "lockout" if lock else "login-failed")
            raise UnknownCounselor("the name or the password is wrong")
        self.db["counselors"].update(c["id"], {"failures": 0, "locked_until": None})
        self.audit(c, "login")
        return c

    def new_login(self, counselor_id: int | None) -> tuple[str, str]:
        """A fresh (cookie token, CSRF token) pair; anonymous (None) for the sign-in form itself."""
        t = now()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.store.lock:
            self.db.execute("delete from console_logins where expires_at < ?", [t])
            ttl = LOGIN_TTL_S if counselor_id is not None else ANON_TTL_S
            row = {"token": _digest(token), "counselor_id": counselor_id, "csrf": csrf}
            self.db["console_logins"].insert(dict(row, created_at=t, expires_at=t + ttl))
        return token, csrf

    def login(self, token: str | None) -> dict | None:
        """The live login row for a cookie token (anonymous or signed in), or None."""
        if not token:
            return None
        rows = list(self.db["console_logins"].rows_where("token = ? and expires_at >= ?", [_digest(token), now()]))
        return rows[0] if rows else None

    def end_login(self, token: str | None) -> None:
        if token:
            self.db.execute("delete from console_logins where token = ?", [_digest(token)])

    # ------------------------------------------------------------ audit (text-free)
    def audit(self, counselor: dict | None, action: str, session_id: int | None = None) -> None:
        self.db["audit"].insert(
            {
                "at": now(),
                "counselor_id": counselor["id"] if counselor else None,
                "counselor": counselor["name"] if counselor else None,
                "action": action,
                "session_id": session_id,
            }
        )

    def audit_rows(self, session_id: int | None = None) -> list[dict]:
        where, args = ("session_id = ?", [session_id]) if session_id is not None else (None, [])
        return list(self.db["audit"].rows_where(where, args, order_by="id"))


def purge_audit(store: Store, before: float) -> int:
    """Retention for the audit trail (text-free, but who opened which session is personal too)."""
    if not store.db["audit"].exists():
        return 0
    with store.lock:
        return store.db.execute("delete from audit where at < ?", [before]).rowcount
