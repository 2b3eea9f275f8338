"""Engine registry: ``memory`` is built in; others come from the ``vsplade.engines`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import Engine, EngineError, Hit, IndexMismatchError, IndexSummary, IndexWriter, Searcher

GROUP = "vsplade.engines"
DEFAULT_ENGINE = "lucene"

__all__ = [
    "Engine",
    "EngineError",
    "Hit",
    "IndexMismatchError",
    "IndexSummary",
    "IndexWriter",
    "Searcher",
    "available_engines",
    "get_engine_class",
    "default_engine_name",
]


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_engines() -> list[str]:
    return sorted({"memory", *_entry_points()})


def get_engine_class(name: str) -> type[Engine]:
    if name == "memory":
        from .memory import MemoryEngine

        return MemoryEngine
    eps = _entry_points()
    if name not in eps:
        hint = {"lucene": "vsplade-lucene", "opensearch": "vsplade-opensearch"}.get(name)
        extra = f" (pip install {hint})" if hint else ""
        raise EngineError(f"unknown engine {name!r}{extra}; available: {', '.join(available_engines())}")
    return eps[name].load()


def default_engine_name() -> str:
    """Lucene when its connector is installed and loads, else the built-in exact engine."""
    ep = _entry_points().get(DEFAULT_ENGINE)
    if ep is None:
        return "memory"
    try:
        ep.load()
    except Exception as e:  # a broken optional connector must not break the core CLI
        import logging

        logging.getLogger(__name__).warning("lucene connector unavailable (%s); using the memory engine", e)
        return "memory"
    return DEFAULT_ENGINE
