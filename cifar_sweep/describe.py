"""`cifar-sweep-describe`: the layer-by-layer table of a configuration's network, without training it.

    cifar-sweep-describe                                   # the tutorial network, as a console table
    cifar-sweep-describe --format markdown model=resnet    # the same Hydra overrides as cifar-sweep
    cifar-sweep-describe --format json model.c1=12 > net.json
    cifar-sweep-describe --config-dir my_conf model=mynet  # my_conf/model/mynet.yaml, beside the built-in models

Each row is one operator of the forward pass of one 3x32x32 image in eval mode: Fn with its
hyper-parameters, Xn (input and output shapes), Wn (parameter tensors) and its additions,
multiplications, maximums and other operations (see cifar_sweep.costs for the convention).
"""

from __future__ import annotations

import argparse
import io
import json
import sys

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf.errors import OmegaConfBaseException

from . import (
    config,  # noqa: F401  (registers the schemas conf/ refers to)
    costs,
)
from .budget import count_params
from .config_dirs import CONFIG_DIR, with_config_dir
from .errors import ConfigError, one_line

INPUT_SHAPE = (3, 32, 32)


def render(report: costs.CostReport, params: int, fmt: str) -> str:
    if fmt == "table":
        return costs.format_table(report, params)
    if fmt == "json":
        return json.dumps(
            {
                "params": params,
                "input_shape": list(INPUT_SHAPE),
                "totals": report.totals.as_dict(),
                "layers": [row.as_dict() for row in report.rows],
                "uncounted": report.uncounted,
            },
            indent=2,
        )
    import pandas as pd

    frame = pd.DataFrame(costs.table_rows(report))
    if fmt == "markdown":
        return frame.to_markdown(index=False)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cifar-sweep-describe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    parser.add_argument(
        "--config-dir",
        "-cd",
        metavar="DIR",
        help="a directory of your own config groups and options, added to the built-in ones (as for cifar-sweep)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for cifar-sweep (e.g. model=resnet)")
    args = parser.parse_args(argv)
    try:
        overrides = with_config_dir(args.overrides, args.config_dir)
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name="describe"):
            cfg = compose(config_name="config", overrides=overrides)
        model = instantiate(cfg.model)
    except (ConfigError, HydraException, OmegaConfBaseException, ValueError) as error:
        print(f"cifar-sweep-describe: error: {one_line(error)}", file=sys.stderr)
        return 2
    print(render(costs.describe(model, INPUT_SHAPE), count_params(model), args.format))
    return 0


def entry_point() -> None:
    try:
        sys.exit(main())
    except BrokenPipeError:  # `cifar-sweep-describe | head`: the reader left, nothing is wrong
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    entry_point()
