"""Dynamic interest clustering over time windows: warm starts, lineage, drift, descriptions, plots."""

from interestrec.dynamics.tracker import Dynamics, track

__all__ = ["Dynamics", "track"]
