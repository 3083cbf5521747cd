"""The session engine: consent → opening → dialogue → closing, mirroring the platform KokoroChat
came from (the LINE user is the client, the bot the counselor).

Client messages are stored as they arrive (utterances, as in KokoroChat); the counselor answers
the merged burst once the client has been quiet for ``quiet_gap_s``. Timers (idle warning and
end, session-limit notice and end, outbox retries) run from one periodic tick.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import NamedTuple

from kokoro.dataset import Turn
from kokoro.generation import window
from kokoro.prompts import COUNSELOR_SYSTEM
from kokoro.screening import SAFE_REPLY, screen_draft

from . import messages as M
from .config import Settings
from .denial import denies
from .line_api import LineApi, Outbox
from .safety import LEARNED, RECENT_MESSAGES, crisis_message, read_message
from .safety_answers import AFTER_MEANS_SAFETY
from .store import Store, now

log = logging.getLogger("kokoro.bot.sessions")


class Answered(NamedTuple):
    """The safety message crisis_first sent for a client's text, and the flag its turn is stored
    with (turns.crisis): 1 the protocol, 2 a follow-up to it, 3 a follow-up to a means at hand or a
    dangerous place. A session that ends right after a 1 or a 3 gets the worried caring close."""

    text: str
    flag: int


class Engine:
    def __init__(self, s: Settings, store: Store, api: LineApi, backend):
        self.s, self.store, self.api, self.backend = s, store, api, backend
        self.outbox = Outbox(store, api)
        self.jobs: queue.Queue = queue.Queue()
        self.queued: set[str] = set()
        self.qlock = threading.Lock()
        self.stop = threading.Event()
        self._effect = threading.local()  # the event being handled on this thread: keys its sends
        self.beats: dict[str, float] = {}  # loop → time.monotonic() of its last round (for /healthz)
        self.busy_since: float | None = None  # when the running generation started
        from .console.store import ConsoleStore
        from .crisis_model import warm_up
        from .feedback import load_scorer

        self.console = ConsoleStore(store)  # the counselor console's accounts and audit, same database
        self.drafts: dict[int, dict] = {}  # session id → the model's suggestion a console asked for (memory only)
        warm_up()  # the learned crisis layer trains now, in the background, not at a client's first message

        self.scorer = load_scorer(s.scorer, s.n_gpu_layers, s.flash_attn)
        if self.scorer is None:
            log.info(
                "no post-session scorer at %s: feedback cards are off. Build the CPU scorer with "
                "`python -m training scorer --preset cpu --data DIR --out models/cpu-scorer`",
                s.scorer,
            )

    # ------------------------------------------------------------ sending
    def take_token(self, user_id: str) -> tuple[str | None, float | None]:
        """The user's reply token (single-use: cleared here) and the deadline for using it."""
        with self.store.lock:
            u = self.store.user(user_id)
            token, ts = u.get("reply_token"), u.get("reply_token_ts") or 0
            self.store.update_user(user_id, reply_token=None)
        return token, ts + self.s.reply_deadline_s if token else None

    @contextlib.contextmanager
    def effects_of(self, event_id: str):
        """Sends made while handling ``event_id`` are keyed by it (and their order), so replaying the
        event after a crash finds them already made instead of sending them again."""
        self._effect.key, self._effect.n = event_id, 0
        try:
            yield
        finally:
            self._effect.key = None

    def send(
        self, user_id: str, msgs: list[dict], priority: int = 0, key: str | None = None, ttl_s: float | None = None
    ) -> None:
        """Reply with the user's fresh reply token if there is one, else push. ``key`` names the
        effect (default: the event being handled, and the n-th send for it): once per key."""
        if key is None and getattr(self._effect, "key", None):
            key = f"event:{self._effect.key}#{self._effect.n}"
            self._effect.n += 1
        self.outbox.send(
            user_id, msgs, *self.take_token(user_id), priority=priority, key=key, ttl_s=ttl_s or self.s.message_ttl_s
        )

    def remember_token(self, user_id: str, token: str | None, event_ts_ms: int | None) -> None:
        if token:
            self.store.update_user(user_id, reply_token=token, reply_token_ts=(event_ts_ms or now() * 1000) / 1000)

    # ------------------------------------------------------------ flow
    def consented(self, user_id: str) -> bool:
        return bool(self.store.user(user_id).get("consent_at"))

    def start(self, user_id: str, first: str | None = None, opening: bool = True) -> dict:
        """Open a session with the counselor's opening, which asks only for what ``first`` (the
        client's message that opened it, if any) did not already say; none (``opening=False``) when
        that message was a crisis line: the protocol just sent invites them to talk, and age, gender
        and "what would you like to talk about today?" after it would not hear what they said."""
        from kokoro.memory import facts

        sess = self.store.open_session(user_id)
        if sess:
            return sess
        sess = self.store.start_session(user_id)
        crisis_at = self.store.user(user_id).get("crisis_at")
        if crisis_at and now() - crisis_at < 86400:  # a crisis line before this session (e.g. before consent)
            self.store.update_session(sess["id"], crisis=1)
        if opening:
            known = facts([first] if first else [])
            self.store.add_turn(sess, "counselor", M.opening_text(known))
            self.send(user_id, M.opening(known), key=f"opening:{sess['id']}")
        return sess

    def end(self, user_id: str, reason: str, notify: bool = True, idle_before: float | None = None) -> bool:
        """Close the user's open session once (whoever closes it sends closing, feedback and the
        rating invite; a racing 終了 and timer do not both). ``idle_before``: only if the client is
        still silent since then (checked in the same statement that closes)."""
        sess = self.store.open_session(user_id)
        if not sess or not self.store.close_session(sess["id"], reason, idle_before):
            return False
        forget = getattr(self.backend, "forget", None)
        if forget:
            forget(str(sess["id"]))
        self.drafts.pop(sess["id"], None)
        left_open = self.store.user(user_id).get("safety_asked")  # what the last safety message asked
        self.store.update_user(user_id, safety_asked=None)  # a new session does not answer this one's questions
        if sess.get("held_by") is not None:  # the client's menu goes back to the default
            from .handoff import link_menu

            link_menu(self, user_id, None)
        if notify and sess["crisis"]:  # a flagged session ends with care, not with a score
            turns = self.store.turns(sess["id"])
            clients = [r for r in turns if r["role"] == "client"]
            last = clients[-1].get("crisis") if clients else None  # what answered their last message (Answered)
            # a crisis line or a means at hand as their last words, or a means they said they would
            # put away and never said was away
            recent = last in (1, 3) or (last == 2 and left_open == "away") or left_open == "still"
            self.send(user_id, M.caring_close(reason, recent, self.s.checkin_after_s / 3600), priority=1)
            # they left (or fell silent, however long) right after saying they were at risk, or with the
            # question whether a means is within reach unanswered: a person should know
            if recent or (last == 2 and left_open == "means"):
                from .handoff import notify_oncall

                notify_oncall(self, sess["id"], "left_after_crisis")
            self._feedback(sess, deliver=False)  # scored and stored for research, never sent
        elif notify:
            self.send(user_id, M.closing(reason))
            self._feedback(sess, deliver=True)
            if any(r["role"] == "client" for r in self.store.turns(sess["id"])):
                from .rating import invite

                self.send(user_id, invite())
        log.info("session %s closed (%s)", sess["id"], reason)
        return True

    def _feedback(self, sess: dict, deliver: bool) -> None:
        try:
            from .feedback import give_feedback

            give_feedback(self, sess, deliver=deliver)
        except Exception as e:  # feedback is a bonus: the session is already closed and stored
            log.error("feedback failed: %s", type(e).__name__)

    def checkins(self, t: float) -> None:
        """Send each opted-in check-in once, when due (its outbox key makes a replay a no-op)."""
        for u in self.store.due_checkins(t):
            self.send(u["user_id"], M.checkin(), key=f"checkin:{u['user_id']}:{u['checkin_due']}")
            self.store.update_user(u["user_id"], checkin_due=None)
            log.info("a crisis check-in was sent")

    def purge(self) -> int:
        """The retention job: forget sessions that ended more than ``retention_days`` ago."""
        if not self.s.retention_days:
            return 0
        from .console.store import purge_audit

        n = self.store.purge_sessions(now() - self.s.retention_days * 86400)
        purge_audit(self.store, now() - self.s.retention_days * 86400)  # text-free rows age out too
        if n:
            log.info("retention: purged %d session(s)", n)
        return n

    def delete_everything(self, user_id: str) -> None:
        sess = self.store.open_session(user_id)
        if sess and getattr(self.backend, "forget", None):
            self.backend.forget(str(sess["id"]))
        if sess:
            self.drafts.pop(sess["id"], None)  # gone from every console at their next look (the rows go below)
            if sess["held_by"] is not None:
                from .handoff import link_menu

                link_menu(self, user_id, None)
        token, deadline = self.take_token(user_id)
        self.store.delete_user(user_id)
        log.info("a user's data was deleted on request")
        self.outbox.send(user_id, M.deleted(), token, deadline)
        self.store.db.execute("delete from outbox where user_id = ? and status = 'sent'", [user_id])

    def crisis_first(self, user_id: str, text: str, message_id: str | None = None) -> Answered | None:
        """Check a client's text before anything else (consent, sessions, rating, generation) and
        answer a crisis at once with the protocol message, ahead of anything queued for the user.
        A message that answers what the protocol asked is read first (``answer_of``): a means at
        hand or a dangerous place gets the means-safety message; explicit crisis words get the
        protocol's question again (or, with a means known to be at hand, its step: ``AGAIN``), or the
        protocol when nothing of it is open; in a session at risk, a denial of the crisis words
        (bot/denial.py: 「死ぬつもりはないです」) is an answer, not a new crisis line; a clear no
        or a "will do" outweighs the learned layer alone (it reads no context); then
        the answer's follow-up. Returns what was sent for the text (its turn's answer), or None.
        No message text is stored here: the flags and the times only."""
        asked, reading = self.answer_of(user_id, text)
        if reading == "danger":
            return self.risk_answered(user_id, text) if asked == "risk" else self.follow_up(user_id, asked, reading)
        # a plan or a farewell split over messages: read with the recent ones when alone says nothing
        cats, read = read_message(text, lambda: self.recent_client_texts(user_id))
        if cats and read == 1 and (asked or self._flagged(user_id)) and denies(text):
            log.warning("a denial of the crisis words, in a session at risk: read as an answer")
            cats = []
        if not cats or (reading in ("safe", "agree") and cats == [LEARNED]):
            answer = self.follow_up(user_id, asked, reading) if asked else None
            return answer or self.leaving(user_id, text, asked, message_id)
        if read > 1:
            log.warning("crisis across %d messages", read)
        open_question = asked if set(cats) - {"harm_others"} else None
        log.warning("crisis expression (%s): %s sent", ",".join(cats), self.AGAIN.get(open_question, ["protocol"])[0])
        return self.protocol(user_id, cats, open_question)

    # another crisis line while a safety question is open → (the short message sent instead of the protocol
    # word for word, what it asks): the protocol's question again; with a means known to be at hand (the
    # means-safety message waits), its step again, not the question about one
    AGAIN = {
        "protocol": ("again", "protocol"),
        "means": ("again", "protocol"),
        "danger": ("again_means", "danger"),
        "away": ("again_means", "danger"),
        "still": ("again_means", "danger"),
    }

    def protocol(self, user_id: str, cats: list[str] | None, open_question: str | None = None) -> Answered:
        """Send the crisis protocol (at once, ahead of anything queued), flag the session, await the
        answer to its questions. ``open_question``: what a safety message asked and is still open when
        this crisis line came; the short message of ``AGAIN`` is sent instead (M.SAFETY_FOLLOWUPS)."""
        self._flag(user_id)
        kind, then = self.AGAIN.get(open_question, (None, "protocol"))
        answer = Answered(M.SAFETY_FOLLOWUPS[kind] if kind else crisis_message(cats), 1)
        self.send(user_id, [M.text(answer.text)], priority=1)
        self._ask(user_id, then)
        return answer

    def leaving(
        self, user_id: str, text: str, asked: str | None = None, message_id: str | None = None
    ) -> Answered | None:
        """A client who said they were at risk in this session takes leave (kokoro.memory.takes_leave)
        and no safety message answers it: the lines and 119 while they are still here, the open door,
        and how to end (M.SAFETY_FOLLOWUPS["leaving"]); the session stays open. Leaving with a safety
        question unanswered (``asked``) or right after a crisis line or a danger answer, the on-call
        person is told (left_after_crisis). Not when a console counselor holds the session (they
        answer), nor for a control word."""
        from kokoro.memory import takes_leave

        from .handoff import notify_oncall

        sess = self.store.open_session(user_id)
        if not sess or not sess["crisis"] or sess.get("held_by") is not None or M.control_word(text):
            return None
        if not takes_leave(text) or self.offered_end(sess, message_id):  # a second goodbye ends it (client_text)
            return None
        clients = [r for r in self.store.turns(sess["id"]) if r["role"] == "client"]
        right_after = asked is not None or bool(clients and clients[-1].get("crisis") in (1, 3))
        log.warning("a client at risk takes leave%s: leaving sent", " right after a crisis" if right_after else "")
        answer = Answered(M.SAFETY_FOLLOWUPS["leaving"], 2)
        self.send(user_id, [M.text(answer.text)], priority=1)
        if right_after:
            notify_oncall(self, sess["id"], "left_after_crisis")
        return answer

    def _flagged(self, user_id: str) -> bool:
        sess = self.store.open_session(user_id)
        return bool(sess and sess["crisis"])

    def _flag(self, user_id: str) -> None:
        """The client is at risk: the session is flagged (its close will be a caring one) and, at its
        first crisis, the on-call person is told."""
        self.store.update_user(user_id, crisis_at=now())
        sess = self.store.open_session(user_id)
        if sess:
            self.store.update_session(sess["id"], crisis=1)
        if not sess or not sess["crisis"]:  # the first crisis of this session
            from .handoff import notify_oncall

            notify_oncall(self, sess["id"] if sess else None)

    def risk_answered(self, user_id: str, text: str) -> Answered | None:
        """The counselor model asked about the client's own suicidal thoughts, self-harm or
        preparation (bot/safety_answers.asks_about_risk) and the answer is a yes: a means, a place or
        an act gets the means-safety message; otherwise the protocol, or, when this session has had it,
        the question about a means within reach."""
        from .safety_answers import read_answer

        if read_answer(text, "protocol") == "danger":
            log.warning("answer to the counselor's risk question names a means, a place or an act")
            self._flag(user_id)
            return self.follow_up(user_id, "protocol", "danger")
        sess = self.store.open_session(user_id)
        if sess and sess["crisis"]:
            return self.follow_up(user_id, "protocol", "unclear")
        log.warning("answer to the counselor's risk question read as yes: protocol and resources sent")
        return self.protocol(user_id, None)

    # what the protocol asked, read → (the message that answers it, what that message asks)
    FOLLOWUPS = {
        ("protocol", "danger"): ("means_safety", "danger"),
        ("protocol", "safe"): ("relief", None),
        ("protocol", "unclear"): ("means_question", "means"),
        ("means", "danger"): ("means_safety", "danger"),
        ("means", "safe"): ("relief", None),
        ("means", "unclear"): (None, None),
        ("danger", "danger"): ("still", "still"),  # cannot put it away: someone now; still listening for 「置いた」
        ("danger", "safe"): ("relief_away", None),
        ("danger", "agree"): ("waiting", "away"),  # "I will" / "OK": wait for it to be away, once
        ("danger", "unclear"): ("stay", "away"),  # the means still at hand: its step once more, then the counselor
        ("away", "danger"): ("still", "still"),
        ("away", "safe"): ("relief_away", None),
        ("away", "agree"): (None, None),
        ("away", "unclear"): (None, None),
        ("still", "danger"): (None, None),  # said once: the counselor goes on (a crisis line still gets again_means)
        ("still", "safe"): ("relief_away", None),  # put away after all (「やっぱり置いてきた」): thanked
        ("still", "agree"): (None, "still"),  # 「わかった」 to "call someone now": the counselor, still listening
        ("still", "unclear"): (None, None),
        ("risk", "safe"): (None, None),  # the counselor's own question answered no: the counselor goes on
        ("risk", "unclear"): (None, None),  # (a yes: risk_answered)
    }

    def answer_of(self, user_id: str, text: str) -> tuple[str | None, str | None]:
        """(what the last safety message asked, how ``text`` answers it: bot/safety_answers), or
        (None, None): nothing asked within ``crisis_window_s``, a control word (終了, 削除, asking
        for a person), or a console counselor holds the session (they answer, and nothing is
        awaited any more)."""
        from .safety_answers import read_answer

        asked = self.awaiting(user_id)
        if asked is None or M.control_word(text):
            return None, None
        sess = self.store.open_session(user_id)
        if sess and sess.get("held_by") is not None:
            self._ask(user_id, None)
            return None, None
        return asked, read_answer(text, asked)

    def follow_up(self, user_id: str, asked: str, reading: str) -> Answered | None:
        """Answer the client's answer to the protocol's safety questions (a safe place? a means
        within reach?): a means at hand or a dangerous place gets the means-safety message (and the
        on-call person is told), a clear no relief, no clear answer one question about a means
        alone; after that the counselor goes on. Returns what was sent, or None (the model replies)."""
        from .handoff import notify_oncall

        kind, then = self.FOLLOWUPS[(asked, reading)]
        self._ask(user_id, then)
        if kind is None:
            return None
        log.warning("answer to the crisis protocol read as %s: %s sent", reading, kind)
        answer = Answered(M.SAFETY_FOLLOWUPS[kind], 3 if reading == "danger" else 2)
        self.send(user_id, [M.text(answer.text)], priority=1)
        if reading == "danger" and asked not in AFTER_MEANS_SAFETY:  # told once, at the first danger answer
            sess = self.store.open_session(user_id)
            notify_oncall(self, sess["id"] if sess else None, "means_at_hand")
        return answer

    def awaiting(self, user_id: str) -> str | None:
        """What the last safety message asked the user (``protocol``, ``means``, ``danger``,
        ``away``), if it is still open: asked in the open session (however long the client took to
        answer: the session's end clears it), or else within ``crisis_window_s`` (asked before
        consent, with no session); a replayed event reads the state it first found."""
        u = self.store.user(user_id)
        asked, at = u.get("safety_asked"), u.get("safety_at")
        key = getattr(self._effect, "key", None)
        if key and u.get("safety_key") == key:
            asked, at = u.get("safety_prev"), u.get("safety_prev_at")
        if not asked or not at:
            return None
        if now() - at < self.s.crisis_window_s:
            return asked
        sess = self.store.open_session(user_id)  # read only for a late answer
        return asked if sess and at >= sess["started_at"] else None

    def _ask(self, user_id: str, asked: str | None) -> None:
        """Record what the safety message just sent asks (None: nothing awaited), once per event."""
        values = self._asking(user_id, asked)
        if values:
            self.store.update_user(user_id, **values)

    def _asking(self, user_id: str, asked: str | None) -> dict | None:
        """The user row's columns that record ``asked``; None on a replay (the state moved on when
        the event first ran)."""
        u = self.store.user(user_id)
        key = getattr(self._effect, "key", None)
        if key and u.get("safety_key") == key:
            return None
        return {
            "safety_asked": asked,
            "safety_at": now(),
            "safety_prev": u.get("safety_asked"),
            "safety_prev_at": u.get("safety_at"),
            "safety_key": key,
        }

    def recent_client_texts(self, user_id: str, n: int = RECENT_MESSAGES) -> list[str]:
        """The client's last ``n`` messages of the open session within ``crisis_window_s``, written
        after the last crisis answer (so an escalation is answered once, and an ordinary message
        after it does not fire the protocol again on the old words); a denial of the crisis words
        (bot/denial.py) is no part of a crisis read over messages."""
        sess = self.store.open_session(user_id)
        if not sess:
            return []
        rows = [r for r in self.store.turns(sess["id"]) if r["role"] == "client"]
        answered = max((i for i, r in enumerate(rows) if r.get("crisis")), default=-1)  # got the protocol
        since = now() - self.s.crisis_window_s
        texts = [r["text"] for r in rows[answered + 1 :] if (r["ts"] or 0) > since][-n:]
        return [t for t in texts if not (sess["crisis"] and denies(t))]

    def client_text(
        self, user_id: str, text: str, answered: Answered | None = None, message_id: str | None = None
    ) -> None:
        """A client's text; ``answered``: the safety message crisis_first already sent for it (the
        protocol or a follow-up: the turn's answer, so the model does not reply). The turn and the
        reply it is owed are stored together, once per LINE message id."""
        control = M.control_word(text)
        if control == "delete":
            self.send(user_id, M.confirm_delete())
            return
        if not self.consented(user_id):  # no text is kept before consent; a crisis was answered already
            self.send(user_id, M.consent_needed())
            return
        if control == "end":
            self.end(user_id, "user")
            return
        from .handoff import request_human

        if not answered and control == "human":  # answered by the request's answer, not by the model
            sess = request_human(self, self.console, user_id)
            self.store.add_client_turn(sess, text, message_id, owed=False)
            return
        from kokoro.memory import has_topic, takes_leave

        sess = self.store.open_session(user_id)
        if not answered and takes_leave(text):
            if sess is None:  # thanks or a goodbye after the close: not a new session and its questions
                self.send(user_id, M.goodbye_after_close())
                return
            if self.offered_end(sess, message_id):  # a goodbye again after the offer to end (or the lines)
                self.store.add_client_turn(sess, text, message_id, owed=False)
                self.end(user_id, "user")
                return
        opened_here = sess is None
        sess = sess or self.start(user_id, text, opening=answered is None)
        # a crisis turn's answer was the protocol message (or a follow-up): the model does not reply to it. The message
        # that opened the session is answered by the opening (one counselor message, asking for what
        # that message did not say) — unless it already said what the client wants to talk about: then
        # the opening only greets, and the model answers it too.
        owed = answered is None and (not opened_here or has_topic(text))
        if self.store.add_client_turn(sess, text, message_id, answered, owed=owed) and owed:
            self.outbox.loading(user_id, 20)

    def offered_end(self, sess: dict, message_id: str | None = None) -> bool:
        """The session's last counselor turn before the client's message ``message_id`` (before all of
        them when it is not stored yet) offered the end: the answer to a goodbye or to "I want to stop"
        (kokoro.memory.OFFER_END), or the lines before leaving (``leaving``). Read before the message,
        so a replayed first goodbye (kill -9 after its answer was stored) is not taken for a second."""
        from kokoro.memory import OFFER_END

        turns = self.store.turns(sess["id"])
        at = next((i for i, r in enumerate(turns) if message_id and r.get("message_id") == message_id), len(turns))
        said = [r["text"] for r in turns[:at] if r["role"] == "counselor"]
        return bool(said) and said[-1] in (OFFER_END, M.SAFETY_FOLLOWUPS["leaving"])

    def unsend(self, user_id: str, message_id: str) -> None:
        """The client unsent a message: it leaves the transcript and every later prompt."""
        if self.store.unsend(user_id, message_id):
            log.info("an unsent message was removed from its session")

    # ------------------------------------------------------------ timers (the scheduler's tick)
    def tick(self) -> None:
        t = now()
        self.checkins(t)
        for sess in self.store.open_sessions():
            uid, sid = sess["user_id"], sess["id"]
            idle = t - (sess["last_client_at"] or sess["started_at"])
            age = t - sess["started_at"]
            if age >= self.s.session_limit_s:
                self.end(uid, "limit")
                continue
            if idle >= self.s.idle_timeout_s and not sess["pending_reply"]:
                # re-checked as it closes: a message written since this snapshot keeps it open
                self.end(uid, "idle", idle_before=t - self.s.idle_timeout_s)
                continue
            if sess["pending_reply"] and idle >= self.s.quiet_gap_s and sess["held_by"] is None:
                self.enqueue(uid)  # (a session a console counselor holds is theirs to answer)
            if (
                not sess["idle_warned"]
                and not sess["pending_reply"]
                and idle >= self.s.idle_timeout_s - self.s.idle_warning_s
            ):
                self.store.update_session(sid, idle_warned=1)
                self.send(
                    uid,
                    M.idle_warning(self.s.idle_timeout_s - idle, crisis=bool(sess["crisis"])),
                    key=f"idle-warning:{sid}:{sess['last_client_at']}",
                    ttl_s=self.s.idle_warning_s,
                )
            if not sess["limit_noticed"] and age >= self.s.session_limit_s - self.s.limit_notice_s:
                self.store.update_session(sid, limit_noticed=1)
                self.send(
                    uid,
                    M.limit_notice(self.s.session_limit_s - age),
                    key=f"limit-notice:{sid}",
                    ttl_s=self.s.limit_notice_s,
                )
        self.outbox.flush()

    def enqueue(self, user_id: str) -> None:
        with self.qlock:
            if user_id in self.queued:
                return
            self.queued.add(user_id)
        self.jobs.put(user_id)

    # ------------------------------------------------------------ generation (one thread)
    def run_generation(self) -> None:
        import time

        while not self.stop.is_set():
            self.beats["generation"] = time.monotonic()
            try:
                uid = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            with self.qlock:
                self.queued.discard(uid)
            self.busy_since = time.monotonic()
            try:
                if isinstance(uid, tuple):  # ("draft", session id): a suggestion a console asked for
                    self._draft(uid[1])
                else:
                    self._respond_once(uid)
            finally:
                self.busy_since = None
                self.jobs.task_done()  # jobs.unfinished_tasks == 0: no generation queued or running

    def _respond_once(self, uid: str) -> None:
        try:
            self.respond(uid)
        except Exception as e:  # a reply every time: never leave the client without an answer
            log.error("generation failed: %s", type(e).__name__)
            try:
                sess = self.store.open_session(uid)
                if sess:
                    self.store.update_session(sess["id"], pending_reply=0)  # answered: no retry loop
                self.send(uid, M.fallback())
            except Exception as e2:  # the thread lives on whatever happens here
                log.error("generation fallback failed: %s", type(e2).__name__)

    def next_turn(self, sid: int, prompt: str, turns: list[dict]) -> str:
        """The model's next counselor turn, kept to what the client told us (kokoro.generation)."""
        from kokoro.generation import next_turn

        pairs = [(r["role"], r["text"]) for r in turns]  # the whole session, not only the window
        ask = lambda avoid, openers: self.backend.generate(str(sid), prompt, avoid=avoid, openers=openers)
        text, applied = next_turn(ask, pairs)
        if applied:
            log.info("reply in session %s shaped: %s", sid, ",".join(applied))  # rule names, never text
        return text

    def request_draft(self, sid: int) -> None:
        """Ask the generation thread (the only one that touches the model) for a suggestion."""
        self.drafts[sid] = {"status": "pending"}
        self.jobs.put(("draft", sid))

    def _draft(self, sid: int) -> None:
        """The model's next turn for a console counselor to read: screened like any draft, never sent."""
        try:
            sess = self.store.session(sid)
            turns = self.store.turns(sid)
            prompt, _ = self.prompt(sess, turns)
            text = self.next_turn(sid, prompt, turns) or ""
            if screen_draft(text):
                text = SAFE_REPLY
            if sid in self.drafts:  # not if the session was closed or deleted meanwhile
                self.drafts[sid] = {"status": "ready", "text": text}
        except Exception as e:
            log.error("draft for the console failed: %s", type(e).__name__)
            if sid in self.drafts:
                self.drafts[sid] = {"status": "failed"}

    def respond(self, user_id: str) -> None:
        sess = self.store.open_session(user_id)
        if not sess or not sess["pending_reply"] or sess["held_by"] is not None:  # a person holds it
            return
        turns = self.store.turns(sess["id"])
        last_client = max((r["id"] for r in turns if r["role"] == "client"), default=None)
        prompt, start = self.prompt(sess, turns)
        reply = self.next_turn(sess["id"], prompt, turns) or M.fallback()[0]["text"]
        failed = screen_draft(reply)
        if failed:  # the platform's screening items: never send a draft that fails them
            log.warning(
                "draft reply in session %s failed screening (%s); safe reply sent", sess["id"], ",".join(failed)
            )
            reply = SAFE_REPLY
        token, deadline = self.take_token(user_id)
        key = f"reply:{sess['id']}:{last_client}"
        rows = Outbox.rows(user_id, [M.text(reply)], token, deadline, key=key, ttl_s=self.s.message_ttl_s)
        from .safety_answers import asks_about_risk

        # a question about the client's risk: its answer is read by the bot, not left to the model, so it
        # is on record with the reply, in one transaction (a crash between the two would lose it)
        asking = self._asking(user_id, "risk") if asks_about_risk(reply) and self.awaiting(user_id) is None else None
        if not self.store.add_reply(sess["id"], reply, last_client, start, rows, user=asking):
            return  # the session closed while generating
        self.outbox.flush_user(user_id)

    def prompt(self, sess: dict, rows: list[dict]) -> tuple[str, int]:
        return window(
            self.backend.fmt,
            [Turn(r["role"], r["time"], r["text"]) for r in rows],
            budget=self.s.n_ctx - self.s.max_tokens,
            start=sess["window_start"] or 0,
            count_tokens=self.backend.count_tokens,
            max_turns=self.s.history_turns,
            system=self.s.system_prompt or COUNSELOR_SYSTEM,
        )
