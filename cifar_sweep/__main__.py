"""`python -m cifar_sweep` is the same as `cifar-sweep`."""

from .app import cli

cli()
