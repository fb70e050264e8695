"""Every model of the evaluation table registers itself on import (``interestrec.evaluate.base.register``)."""

from interestrec.evaluate.models import ease, itemknn, l3ae, llm, mostpop  # noqa: F401

try:  # neural baselines (torch / PyG)
    from interestrec.evaluate.models import lightgcn, sasrec, sasrec_llm  # noqa: F401
except ImportError:  # pragma: no cover - reported as skipped by the stage
    pass
