"""Every model of the evaluation table registers itself on import (``interestrec.evaluate.base.register``).

torch and PyG are dependencies of the package: a neural row that cannot be imported is an error, never a
silently skipped row.
"""

from interestrec.evaluate.models import ease, itemknn, l3ae, lightgcn, llm, mostpop, sasrec, sasrec_llm  # noqa: F401
