"""pyproject.toml and requirements/*.txt say the same thing (one source of truth, checked here)."""

import tomllib

from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def pins(name: str, seen=None) -> list[str]:
    """The requirement lines of requirements/NAME.txt with its `-r` includes expanded."""
    out = []
    for line in (REPO / "requirements" / f"{name}.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            out += pins(line[3:].removesuffix(".txt"))
        elif line:
            out.append(line)
    return out


def test_core_requirements_are_the_project_dependencies():
    assert sorted(pins("core")) == sorted(PYPROJECT["project"]["dependencies"])


def test_every_requirements_file_is_an_optional_group_with_the_same_pins():
    groups = PYPROJECT["project"]["optional-dependencies"]
    core = set(pins("core"))
    names = sorted(p.stem for p in (REPO / "requirements").glob("*.txt") if p.stem != "core")
    assert sorted(groups) == names
    for name in names:
        assert sorted(set(pins(name)) - core) == sorted(groups[name]), name


def test_the_bot_group_needs_no_torch():
    assert not any(p.startswith("torch") for p in PYPROJECT["project"]["optional-dependencies"]["bot"])


def test_package_data_ships_the_safety_rules_sets_and_templates():
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert {"bot", "evaluation.humaneval"} <= set(data)
    for package, patterns in data.items():
        for pattern in patterns:
            assert list((REPO / package.replace(".", "/")).glob(pattern)), (package, pattern)
