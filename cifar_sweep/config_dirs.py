"""Where Hydra finds the configuration: the built-in conf/, and a user's own config directory beside it.

The repository keeps conf/ at its top level, beside the package (the layout is fixed): a checkout and its
editable install read it there. An installed wheel carries it inside the package, as cifar_sweep/conf/
(setup.py maps it there). Both are found from this file's place, as an absolute path, so that Hydra reads a
directory whichever way the program was started (console script, python -m, tests).

A user adds groups and options without touching either with a config directory of their own:
`cifar-sweep --config-dir my_conf model=mynet` (Hydra's option) reads my_conf/model/mynet.yaml beside the
built-in models, and `cifar-sweep-describe --config-dir my_conf` does the same through with_config_dir().
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED = _PACKAGE / "conf"  # an installed wheel
_CHECKOUT = _PACKAGE.parent / "conf"  # the repository (and its editable install)
CONFIG_DIR = str(_INSTALLED if _INSTALLED.is_dir() else _CHECKOUT)


def with_config_dir(overrides: list[str], config_dir: str | None) -> list[str]:
    """The overrides plus one that adds `config_dir` to Hydra's search path, as `--config-dir` does for a
    Hydra app: for the compose API (cifar-sweep-describe, the app's check before a run), which takes a single
    primary directory.

    The compose API's documented way to add a directory is the `hydra.searchpath` override. Hydra puts its
    entries after the primary config directory, and --config-dir's too: the built-in options keep their names,
    the user's are added beside them. A hydra.searchpath given on the command line keeps its entries, first."""
    if config_dir is None:
        return list(overrides)
    path = os.path.abspath(config_dir)
    if not os.path.isdir(path):
        raise ConfigError(
            f"--config-dir {config_dir}: there is no directory {path}: give a folder of config groups, "
            f"e.g. my_conf holding my_conf/model/mynet.yaml"
        )
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept, given = [], []
    for line, override in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        if override.get_key_element() == "hydra.searchpath":
            given = list(override.value())
        else:
            kept.append(line)
    entries = ", ".join(quoted(entry) for entry in [*given, "file://" + path])
    return [*kept, f"hydra.searchpath=[{entries}]"]


def quoted(text: str) -> str:
    """A string as a quoted value of Hydra's override grammar (a path may hold commas, spaces, brackets): a
    quote is escaped, and so are the backslashes before a quote or the closing one; any other is itself."""
    text = re.sub(r"(\\*)'", lambda found: found[1] * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda found: found[1] * 2, text) + "'"
