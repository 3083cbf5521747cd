// The console's live parts: the queue and the crisis alert on every page, the open transcript.
// Every piece of text is set with textContent (never as HTML): a client's words cannot run here.
"use strict";
(function () {
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const seen = new Set(JSON.parse(sessionStorage.getItem("kokoroSeenCrisis") || "[]"));
  const alertBox = document.getElementById("alert");
  const queue = document.getElementById("queue");
  const holder = document.getElementById("holder");
  const poll = Number((queue || holder || {dataset: {}}).dataset.poll || 2000);

  // a crisis session alerts once while live and once more if the client leaves it (to follow up)
  const key = (s) => s.id + (s.ended ? ":ended" : "");
  function showAlerts(sessions) {
    const fresh = sessions.filter((s) => s.crisis && !seen.has(key(s)));
    if (!fresh.length) return;
    alertBox.replaceChildren();
    alertBox.append("危機の可能性がある相談があります: ");
    fresh.forEach((s) => {
      const a = el("a", "crisis-link", "#" + s.id + (s.ended ? "（危機のあと終了）" : ""));
      a.href = "/console/s/" + s.id;
      a.dataset.id = s.id;
      alertBox.append(a, " ");
    });
    const ok = el("button", "", "確認");
    ok.id = "ack";
    ok.type = "button";
    ok.onclick = () => {
      fresh.forEach((s) => seen.add(key(s)));
      sessionStorage.setItem("kokoroSeenCrisis", JSON.stringify([...seen]));
      alertBox.style.display = "none";
    };
    alertBox.append(ok);
    alertBox.style.display = "block";
    document.title = "【危機】" + document.title.replace(/^【危機】/, "");
  }

  function renderQueue(sessions) {
    const body = document.getElementById("rows");
    body.replaceChildren(
      ...sessions.map((s) => {
        const tr = el("tr", s.crisis ? "crisis" : "");
        tr.dataset.id = s.id;
        const link = el("a", "", "#" + s.id);
        link.href = "/console/s/" + s.id;
        const state = el("td");
        if (s.crisis) state.append(el("span", "tag crisis", "危機"));
        if (s.asked_for_person) state.append(el("span", "tag person", "人を希望"));
        if (s.ended) state.append(el("span", "tag", "終了"));
        const cells = [el("td"), state, el("td", "", s.last), el("td", "", s.waiting_s + "秒"),
          el("td", "", Math.floor(s.length_s / 60) + "分"), el("td", "", s.ended ? "-" : s.holder || "AI")];
        cells[0].append(link);
        tr.append(...cells);
        return tr;
      })
    );
    document.getElementById("empty").hidden = sessions.length > 0;
  }

  function renderSession(s) {
    const box = document.getElementById("turns");
    box.replaceChildren(
      ...s.turns.map((t) => {
        const d = el("div", "turn " + t.role);
        d.append(el("span", "by", (t.by === "client" ? "相談者" : t.by) + " · " + t.time.slice(11, 16)), t.text);
        return d;
      })
    );
    holder.textContent = "担当: " + (s.holder || "AI（モデル）") + (s.open ? "" : "（終了済み）");
    const draftBox = document.getElementById("draft-box");
    if (draftBox && s.draft) {
      draftBox.hidden = false;
      document.getElementById("draft").textContent =
        s.draft.status === "ready" ? s.draft.text : s.draft.status === "failed" ? "案を作れませんでした。" : "作成中…";
    }
  }

  async function get(url) {
    const r = await fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}});
    if (r.status === 401) location.href = "/console/login?next=" + encodeURIComponent(location.pathname);
    return r;
  }

  async function tick() {
    try {
      const q = await get("/console/api/queue");
      if (q.ok) {
        const data = await q.json();
        showAlerts(data.sessions);
        if (queue) renderQueue(data.sessions);
      }
      if (holder) {
        const r = await get("/console/api/s/" + holder.dataset.session);
        if (r.status === 404) {  // deleted by the client: nothing of it stays on screen
          document.querySelector("main").replaceChildren(el("p", "", "この相談は削除されました。"));
          document.querySelector("main").firstChild.id = "gone";
          return;
        }
        if (r.ok) renderSession(await r.json());
      }
    } catch (e) {
      /* offline for a moment: the next tick tries again */
    }
    setTimeout(tick, poll);
  }

  const use = document.getElementById("use-draft");
  if (use) use.onclick = () => {
    const t = document.getElementById("reply-text");
    if (t) t.value = document.getElementById("draft").textContent;
  };
  tick();
})();
