"""Keep the README's two commands and CI honest."""

import re

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def commands():
    return re.findall(r"```sh\n(.+?)\n```", README, re.S)


def test_readme_gives_main_and_test_commands_and_ci_runs_the_test_command():
    main, test = commands()[0], commands()[1]
    assert main == "./setup.sh && .venv/bin/python -m bot chat"
    assert test == "./setup.sh && .venv/bin/python -m pytest -q"
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == test


def test_setup_installs_everything_requirements_name():
    setup = (REPO / "setup.sh").read_text()
    assert "-m venv .venv" in setup and "-r requirements.txt" in setup
    req = (REPO / "requirements.txt").read_text()
    for part in ("core", "training", "convert", "bot", "evaluation", "dev"):
        assert f"requirements/{part}.txt" in req


def test_every_cli_named_in_the_readme_exists():
    for mod in set(re.findall(r"python -m (\w+)", README)):
        assert (REPO / mod / "__main__.py").is_file() or mod in ("pytest", "llama_cpp"), mod
    for mod, subs in re.findall(r"`python -m (bot|training|evaluation|kokoro) ([\w /-]+)`", README):
        for sub in [alt.split()[0] for alt in subs.split(" / ") if alt.strip()]:  # "chat / serve", "counselor add NAME"
            assert sub in commands_of(mod), f"README: python -m {mod} {sub} is not a command"


def test_the_readme_is_a_guide():
    assert len(README.splitlines()) <= 200, "the README is a guide; details belong in docs/"


def test_every_doc_the_readme_links_exists_and_names_real_commands():
    docs = set(re.findall(r"\]\((docs/[\w./-]+\.md)\)", README))
    assert docs, "the README links its docs pages"
    for page in docs:
        path = REPO / page
        assert path.is_file(), page
        text = path.read_text(encoding="utf-8")
        for mod in set(re.findall(r"python -m ([\w.]+)", text)):
            top = mod.split(".")[0]
            if top in ("pytest", "llama_cpp"):  # installed, not ours
                continue
            assert (REPO / top).is_dir(), f"{page}: python -m {mod}"
            if "." in mod:
                assert (REPO / (mod.replace(".", "/") + ".py")).is_file(), f"{page}: python -m {mod}"
        for script in set(re.findall(r"scripts/[\w]+\.py", text)):
            assert (REPO / script).is_file(), f"{page}: {script}"
        for mod, sub in set(re.findall(r"python -m (bot|training|evaluation|kokoro) ([a-z][\w-]*)", text)):
            assert sub in commands_of(mod), f"{page}: python -m {mod} {sub} is not a command"


def commands_of(mod: str) -> set:
    """The commands (the first positional argument's choices) of ``python -m mod``."""
    import importlib

    parser = importlib.import_module(f"{mod}.__main__").make_parser()
    return next(set(a.choices) for a in parser._actions if not a.option_strings and a.choices)


FIGURE = re.compile(r"\d+(?:\.\d+)?\s?%|\d+\.\d+\s?(?:ms|s|min|minutes|seconds|GiB|MiB|KB|×)(?!\w)|\b0\.\d{2,}")
COMMAND = re.compile(
    r"python -m |scripts/\w+\.py|\.venv/bin/|pytest|\./setup\.sh|\.ci/run|(?:results|history)\.md#|\]\(#"
)


def sections(text: str) -> list[str]:
    """The page cut at its headings (not at a ``#`` comment inside a code block)."""
    out, cur, fence = [], [], False
    for line in text.splitlines():
        fence ^= line.startswith("```")
        if not fence and re.match(r"#{1,4} ", line) and cur:
            out.append("\n".join(cur))
            cur = []
        cur.append(line)
    return out + ["\n".join(cur)]


def unsourced(text: str) -> list[str]:
    """Headings of sections that state a measured figure (a percentage, a decimal with a unit)
    without naming the command that produced it or linking the entry (results, history, a section
    of the same page) that does."""
    return [s.splitlines()[0] for s in sections(text) if FIGURE.search(s) and not COMMAND.search(s)]


def test_a_figure_without_its_command_is_found():
    page = "# T\n\n## Speed\n\nIt answers in 4.7 ms.\n\n```sh\n# a comment\n```\n\n## Recall\n\n"
    assert unsourced(page + "92 % (`python -m bot safety-eval`).") == ["## Speed"]
    assert unsourced("## Speed\n\n4.7 ms ([results](results.md#the-bot-benchmark))") == []


def test_every_figure_in_the_readme_and_docs_names_its_command():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    bad = {p.name: unsourced(p.read_text(encoding="utf-8")) for p in pages}
    assert not {k: v for k, v in bad.items() if v}, f"figures without their command: {bad}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)", README))
    assert {p.name for p in (REPO / "docs").glob("*.md")} <= linked
