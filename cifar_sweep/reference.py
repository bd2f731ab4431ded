"""The configuration reference, generated from conf/ and the typed schemas, so that it cannot go stale.

    python -m cifar_sweep.reference                 # prints the page
    python -m cifar_sweep.reference docs/reference.md

Every config group, every option in it with what it is (the first comment of its file), and every key of each
option with its type, its value there and one line of meaning. The meaning is the key's own comment in the YAML,
`key: value  # meaning` (and the comment lines aligned under it), or, for a key an option sets without a comment,
the comment the group's other options give it. tests/test_docs.py fails when a key has no meaning anywhere, or when
the committed page differs from what this writes. No torch here: it reads YAML files and dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import sys
import typing
from pathlib import Path

import yaml

from .config import SCHEMAS
from .config_dirs import CONFIG_DIR

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")
CONTINUED = re.compile(r"^\s+#\s?(?P<comment>.*)$")
PLUMBING = ("defaults", "_target_", "_partial_", "_convert_")  # Hydra's keys, not settings
WHOLE_PACKAGES = ("experiment", "hparams_search", "ablation")  # global overrides: listed, their keys are others'


@dataclasses.dataclass
class Option:
    group: str
    name: str
    about: str  # what the option is: its file's first comment
    values: dict  # key -> value, as the YAML sets it (Hydra's keys left out)
    comments: dict  # key -> the comment beside it in this file
    target: str | None
    defaults: list  # its defaults list: what it starts from


def read_option(path: Path, group: str) -> Option:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    about = []
    for line in lines:
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            about.append(line.lstrip("#").strip())
    comments: dict[str, str] = {}
    above: list[str] = []  # the comment lines right above a key: its meaning when it has none beside it
    parents: list[tuple[int, str]] = []  # (indent, key) of the mappings a line is inside
    last = None
    for number, line in enumerate(lines):
        found = KEY_LINE.match(line)
        if found:
            indent = len(found["indent"])
            parents = [(i, k) for i, k in parents if i < indent]
            last = ".".join([k for _, k in parents] + [found["key"]])
            parents.append((indent, found["key"]))
            beside, over = found["comment"], " ".join(above)
            comment = f"{over} ({beside})" if over and beside else (beside if beside is not None else over or None)
            if comment is not None and number >= len(about):  # not the file's own first comment
                comments[last] = comment.strip()
            above = []
            continue
        continued = CONTINUED.match(line)
        if continued and last in comments and not line.lstrip().startswith("- "):
            comments[last] += " " + continued["comment"].strip()
        elif line.startswith("#"):
            above.append(line.lstrip("#").strip())
            last = None
        elif line.strip() and not line.lstrip().startswith("-"):
            last, above = None, []
        elif not line.strip():
            above = []
    loaded = yaml.safe_load(text) or {}
    values = {}
    for key, value in loaded.items() if isinstance(loaded, dict) else ():
        if key in PLUMBING or key == "hydra":
            continue
        if isinstance(value, dict) and not group:  # the top-level config's nodes: budget.max_params, trial.study
            values.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            values[key] = value
    target = loaded.get("_target_") if isinstance(loaded, dict) else None
    defaults = loaded.get("defaults", []) if isinstance(loaded, dict) else []
    return Option(group, path.stem, first_sentence(" ".join(about)), values, comments, target, defaults)


def first_sentence(text: str) -> str:
    found = re.search(r"[.!?](\s|$)", text)
    return text[: found.start() + 1] if found else text


def options(conf: Path) -> dict[str, list[Option]]:
    """group -> its options, in name order; the top-level config.yaml as the group ""."""
    groups = {"": [read_option(conf / "config.yaml", "")]}
    for folder in sorted(p for p in conf.iterdir() if p.is_dir()):
        groups[folder.name] = [read_option(path, folder.name) for path in sorted(folder.glob("*.yaml"))]
    return groups


def schema_types(group: str, option: Option, group_options: list[Option]) -> dict[str, str]:
    """key -> its type, for an option built on a typed schema (cifar_sweep.config.SCHEMAS): one whose defaults name
    `/schema_...@_here_`, or another option of its group that does."""
    schema = schema_of(option, {o.name: o for o in group_options})
    if schema is None:
        return {}
    hints = typing.get_type_hints(schema)
    return {name: type_name(hint) for name, hint in hints.items() if not name.startswith("_")}


def type_name(hint) -> str:
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(member.value for member in hint)
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def schema_of(option: Option, by_name: dict[str, Option], seen: frozenset = frozenset()):
    for entry in option.defaults:
        name = entry if isinstance(entry, str) else None
        if name is None:
            continue
        if name.startswith("/schema_") and name.endswith("@_here_"):
            key = name[len("/schema_") : -len("@_here_")]
            return next((schema for k, schema in SCHEMAS.items() if k.replace("/", "_") == key), None)
        if name in by_name and name not in seen:
            return schema_of(by_name[name], by_name, seen | {option.name})
    return None


def type_of(value) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}.get(type(value), "")


def shown(value) -> str:
    text = "null" if value is None else yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return "`" + text.replace("|", "\\|") + "`" if text else "`''`"


def meanings(group_options: list[Option]) -> dict[str, str]:
    """key -> the first comment any option of the group gives it (the group's base options first)."""
    found: dict[str, str] = {}
    for option in sorted(group_options, key=lambda o: (o.name not in ("default", "convnet", "tutorial"), o.name)):
        for key, comment in option.comments.items():
            found.setdefault(key, comment)
    return found


def undescribed(conf: Path | str = CONFIG_DIR) -> list[str]:
    """GROUP/OPTION.KEY for every key that no comment of its group describes (and options without a first comment)."""
    missing = []
    for group, group_options in options(Path(conf)).items():
        meaning = meanings(group_options)
        for option in group_options:
            place = f"{group}/{option.name}" if group else "config"
            if group and not option.about:
                missing.append(f"{place} (its first comment: what the option is)")
            if group in WHOLE_PACKAGES:
                continue
            for key in option.values:
                if key not in meaning and key.rsplit(".", 1)[0] not in meaning:
                    missing.append(f"{place}.{key}")
    return missing


def page(conf: Path | str = CONFIG_DIR) -> str:
    """The reference page, in Markdown."""
    groups = options(Path(conf))
    out = [
        "# Configuration reference",
        "",
        "Generated by `make docs` (`python -m cifar_sweep.reference docs/reference.md`) from `conf/` and the typed",
        "schemas (`cifar_sweep/config.py`); do not edit by hand. Pick an option with `GROUP=OPTION`, set a key with",
        "`GROUP.KEY=VALUE` (`cifar-sweep --cfg job` shows the composed configuration). How to use them:",
        "[configuration.md](configuration.md).",
        "",
        "Groups: " + ", ".join(f"[{g}](#{g})" for g in groups if g) + ", and the [top-level keys](#top-level-keys).",
        "",
    ]
    for group, group_options in groups.items():
        out += section(group, group_options)
    return "\n".join(out).rstrip() + "\n"


def section(group: str, group_options: list[Option]) -> list[str]:
    meaning = meanings(group_options)
    if not group:
        lines = ["## Top-level keys", "", "In `conf/config.yaml`, outside every group.", ""]
        return lines + key_table(group_options[0], meaning, {}, prefix="") + [""]
    lines = [f"## {group}", "", "| option | what it is |", "| --- | --- |"]
    lines += [f"| `{group}={o.name}` | {o.about or '—'} |" for o in group_options]
    lines.append("")
    if group in WHOLE_PACKAGES:
        return lines + ["Each option sets keys of the other groups (`# @package _global_`): read its file.", ""]
    for option in group_options:
        if not option.values:
            continue
        lines += [f"### {group}={option.name}", ""]
        if option.target:
            lines += [f"Builds `{option.target}`.", ""]
        lines += key_table(option, meaning, schema_types(group, option, group_options), prefix=f"{group}.") + [""]
    return lines


def key_table(option: Option, meaning: dict, types: dict, prefix: str) -> list[str]:
    lines = ["| key | type | value | meaning |", "| --- | --- | --- | --- |"]
    for key, value in option.values.items():
        if key == "hydra":
            continue
        parent = key.rsplit(".", 1)[0]  # a top-level node's keys share its comment: trial.study, trial.number
        own = option.comments.get(key) or meaning.get(key)
        above = option.comments.get(parent) if parent != key else None
        about = f"{above} ({own})" if own and above else own or above or ""
        about = about.replace("|", "\\|")
        kind = types.get(key) or type_of(value)
        lines.append(f"| `{prefix}{key}` | {kind} | {shown(value)} | {about} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    text = page()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
