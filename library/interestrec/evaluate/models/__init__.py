"""Every row of the evaluation table, registered explicitly here (``interestrec.evaluate.base.register``).

torch, PyG and peft are dependencies of the package: a row whose module cannot be imported is an error, never
a silently skipped row.
"""

from interestrec.evaluate.base import REGISTRY
from interestrec.evaluate.models import (
    adapt,
    ease,
    fused,
    graphsage,
    itemknn,
    l3ae,
    lightgcn,
    llm,
    mostpop,
    sasrec,
    sasrec_llm,
)

MODULES = (mostpop, itemknn, ease, lightgcn, sasrec, llm, l3ae, sasrec_llm, fused, graphsage, adapt)


def registered() -> dict:
    """Name → class of every row of the table (each module in :data:`MODULES` registers its rows on import)."""
    return dict(REGISTRY)
