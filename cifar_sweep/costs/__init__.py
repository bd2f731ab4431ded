"""What a network costs: a layer-by-layer table (Fn, Xn, Wn) with exact counts of additions,
multiplications, maximums and other operations, taken from the real forward pass at the operator level.

A TorchDispatchMode (`counter.OpCounter`) sees every ATen operator the model runs (functional calls,
`x + y`, `torch.cat` included) and module hooks say which module ran it, so a module called twice gives
two rows.

The convention (also in the README):
  - a dot product of length K: K multiplications and K-1 additions, plus 1 addition for a bias;
  - ReLU: 1 max per element; a k x k max-pool: k*k-1 max per output;
  - average pooling (and a mean): k*k-1 additions and 1 multiplication per output;
  - batch norm in eval mode: 1 multiplication and 1 addition per element;
  - an elementwise addition or subtraction (a residual connection): 1 addition per element;
  - exp, log, division, square root, erf, tanh: 1 "other" each (GELU, SiLU, sigmoid, softmax... need them);
  - flatten, view, cat, dropout at eval, copies and layout changes: nothing.
Backward operators follow the same rules (`backward`): every product of the forward pass has one
product per gradient it feeds, and sums of n terms cost n-1 additions.

The modules, in the order they build on each other:
    count        OpCount, the four kinds of operation and their sum
    forward      the rule of each forward operator (and of the optimizers' `_foreach_` operators)
    backward     the rule of each backward operator
    hyper        Fn's hyper-parameters (kernel, stride...) read from an operator's arguments
    counter      the dispatch mode that applies the rules, row by row: OpCounter, Row, CostReport
    layer_table  one image's forward pass as a table (console, CSV, Markdown)
    training     one training step's operations per image
"""

from .count import KINDS, OpCount
from .counter import CostReport, OpCounter, Row
from .layer_table import describe, fn_label, format_table, shapes_label, table_rows, weights_label
from .training import training_ops_per_image

__all__ = [
    "KINDS",
    "CostReport",
    "OpCount",
    "OpCounter",
    "Row",
    "describe",
    "fn_label",
    "format_table",
    "shapes_label",
    "table_rows",
    "training_ops_per_image",
    "weights_label",
]
