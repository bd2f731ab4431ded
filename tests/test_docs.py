"""The README and docs/ as a newcomer uses them: every command they show composes, every relative link resolves, the
course's page says the same in English and French, and the configuration reference is the one conf/ makes now."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cifar_sweep import reference

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "benchmarks" / "results").glob("*/README.md")]
)
PAGES.append(REPO / "benchmarks" / "results" / "README.md")
PROGRAMS = ("cifar-sweep", "cifar-sweep-describe", "multirun-analysis")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def bash_lines(page: Path) -> list[str]:
    """The commands of the page's ```bash blocks, continuation lines joined, comments and blank lines left out."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(shlex.join(words))
    return lines


def commands(program: str) -> list[tuple[str, list[str]]]:
    """(where, arguments) of every `program` command in the README and docs."""
    found = []
    for page in PAGES:
        for line in bash_lines(page):
            words = shlex.split(line)
            if words[0] == program:
                found.append((f"{page.relative_to(REPO)}: {line}", words[1:]))
    return found


def docs_config_dir(where: Path) -> None:
    """The config directory of the docs' own, my_conf/, as the pages write it: the files of their heredocs
    (cat > my_conf/PATH <<'YAML') and of their YAML blocks introduced by their path (`my_conf/PATH`:)."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        files = re.findall(r"cat > (my_conf/\S+) <<'YAML'\n(.*?)\nYAML", text, flags=re.S)
        files += re.findall(r"`(my_conf/\S+)`:\n\n```yaml\n(.*?)```", text, flags=re.S)
        for path, content in files:
            (where / path).parent.mkdir(parents=True, exist_ok=True)
            (where / path).write_text(content.rstrip("\n") + "\n")
    (where / "my_conf").mkdir(exist_ok=True)


def case_id(value) -> str:
    return value if isinstance(value, str) else ""


def test_the_pages_show_commands_of_each_program():
    assert len(commands("cifar-sweep")) >= 20 and commands("multirun-analysis") and commands("cifar-sweep-describe")


@pytest.mark.parametrize(
    "where, args", commands("cifar-sweep"), ids=lambda value: value if isinstance(value, str) else ""
)
def test_every_cifar_sweep_command_of_the_docs_composes(where, args, tmp_path, monkeypatch):
    from cifar_sweep.app import composition_problem

    monkeypatch.chdir(tmp_path)  # the output directories a command names are checked for writing: not the checkout's
    docs_config_dir(tmp_path)
    assert composition_problem(args) is None, where


@pytest.mark.parametrize("where, args", commands("multirun-analysis"), ids=case_id)
def test_every_analysis_command_of_the_docs_parses(where, args):
    from multirun_analysis.cli import build_parser

    try:
        build_parser().parse_args(args)
    except SystemExit as error:
        pytest.fail(f"{where}: argparse refused it (exit {error.code})")


@pytest.mark.parametrize("where, args", commands("cifar-sweep-describe"), ids=case_id)
def test_every_describe_command_of_the_docs_runs(where, args, capsys, tmp_path, monkeypatch):
    from cifar_sweep import describe

    monkeypatch.chdir(tmp_path)
    docs_config_dir(tmp_path)
    assert describe.main(args) == 0, (where, capsys.readouterr().err)


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_the_course_page_names_the_same_commands_in_english_and_french():
    english, french = bash_lines(REPO / "docs" / "course.md"), bash_lines(REPO / "docs" / "cours.md")
    assert len(english) >= 10 and english == french


def test_the_readme_stays_a_newcomers_page():
    assert (REPO / "README.md").stat().st_size <= 15_000


def test_every_key_of_conf_has_a_meaning():
    assert reference.undescribed() == []


def test_the_configuration_reference_is_what_conf_makes_now():
    committed = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    assert committed == reference.page(), (
        "docs/reference.md is stale: run python -m cifar_sweep.reference docs/reference.md"
    )
