"""QLut: y = table[x + 128], a 256-entry int8 table built at compile time (see
docs/semantics.md); `fn` names the function for reports only."""
from __future__ import annotations

import numpy as np

from edgeq.reference._common import i64
from edgeq.ops import implements


@implements("reference", "QLut")
def qlut(node, x, table):
    table = np.asarray(table).reshape(-1)
    if table.size != 256:
        raise ValueError(f"{node.name}: QLut table has {table.size} entries, not 256")
    return table.astype(np.int8)[i64(x) + 128]
