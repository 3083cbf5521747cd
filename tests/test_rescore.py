import json
import subprocess
import sys
import time

from conftest import REPO


def make_db(path, dialogues, n=3):
    from bot.store import Store

    store = Store(str(path))
    for d in dialogues[:n]:
        sess = store.start_session(f"U{d.id:0>32}")
        for t in d.turns[:30]:
            store.add_turn(sess, t.role, t.text)
        store.close_session(sess["id"], "user")
    store.start_session("Uopen")  # open sessions are not scored
    return store


def test_rescore_is_resumable_and_records_the_scorer(small_cpu_scorer, dialogues, tmp_path):
    scorer_dir, _ = small_cpu_scorer
    store = make_db(tmp_path / "bot.sqlite3", dialogues)
    cmd = [
        sys.executable,
        "-m",
        "evaluation",
        "rescore",
        "--db",
        str(tmp_path / "bot.sqlite3"),
        "--cpu-scorer",
        str(scorer_dir),
    ]
    first = json.loads(subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert first["scored"] == 3 and first["sessions_per_second"] > 0
    again = json.loads(subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert again["scored"] == 0 and again["skipped_already_scored"] == 3
    rows = list(store.db["scores"].rows)
    assert len(rows) == 3 and all(json.loads(r["scorer"])["kind"] == "kokoro-cpu-scorer" for r in rows)
    assert all(r["total"] == sum(json.loads(r["items"])) for r in rows)


def test_rescore_since_filters_by_end_date(small_cpu_scorer, dialogues, tmp_path):
    from evaluation.rescore import rescore
    from kokoro.cpu_scorer import CpuScorer

    store = make_db(tmp_path / "b.sqlite3", dialogues, n=2)
    first = list(store.db["sessions"].rows)[0]
    store.update_session(first["id"], ended_at=time.time() - 10 * 86400)
    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    r = rescore(str(tmp_path / "b.sqlite3"), CpuScorer.load(small_cpu_scorer[0]), since=since, progress=False)
    assert r["scored"] == 1


def test_nightly_job_is_a_daily_cron(small_cpu_scorer):
    from evaluation.rescore import nightly

    sched = nightly("03:30", lambda: None)
    job = sched.get_jobs()[0]
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert fields["hour"] == "3" and fields["minute"] == "30"


def test_simulate_replay_and_llm_clients_through_the_session_engine(tiny_gguf, small_cpu_scorer, kokoro_dir, tmp_path):
    base = [
        sys.executable,
        "-m",
        "evaluation",
        "simulate",
        "--counselor",
        str(tiny_gguf),
        "--cpu-scorer",
        str(small_cpu_scorer[0]),
        "--data",
        str(kokoro_dir),
        "--n-ctx",
        "512",
        "--max-tokens",
        "12",
        "--threads",
        "1",
    ]
    r = subprocess.run(
        base + ["--client", "replay", "--n", "2", "--max-turns", "3", "--out", str(tmp_path / "a")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout)
    assert m["n"] == 2 and m["mean_client_turns"] == 3.0 and 0 <= m["mean_total"] <= 100
    assert 0 <= m["human_mean_total"] <= 100  # the same replayed client turns with the human counselor
    full = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert full["ldd_counselor"]["ldd"] > 0 and full["ldd_counselor_human"]["dialogues"] == 2
    sessions = [json.loads(x) for x in (tmp_path / "a" / "sessions.jsonl").read_text().splitlines()]
    roles = [t["role"] for t in sessions[0]["turns"]]
    assert roles[0] == "counselor" and roles.count("client") == 3 and roles[-1] == "counselor"
    r = subprocess.run(
        base + ["--client", str(tiny_gguf), "--n", "1", "--max-turns", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and json.loads(r.stdout)["mean_client_turns"] == 2.0, r.stderr[-2000:]


def test_the_human_side_of_a_replay_stops_where_the_replay_stopped(dialogues):
    from evaluation.simulate import ReplayClient
    from kokoro.perturb import blocks

    d = next(x for x in dialogues if sum(b[0].role == "client" for b in blocks(x.turns)) > 4)
    human = ReplayClient(d).human(3)
    bl = blocks(human)
    assert sum(b[0].role == "client" for b in bl) == 3 and bl[-1][0].role == "counselor"
    assert human == list(d.turns[: len(human)])  # a prefix of the real dialogue, utterances intact


def test_client_simulator_prompt_follows_appendix_e():
    from kokoro.dataset import Turn
    from kokoro.prompts import CLIENT_END, CLIENT_SIM_SYSTEM, client_sim_messages

    assert "10往復" in CLIENT_SIM_SYSTEM and CLIENT_END in CLIENT_SIM_SYSTEM
    msgs = client_sim_messages([Turn("counselor", "t", "こんにちは"), Turn("client", "t", "はい")])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]  # the client speaks as the assistant
