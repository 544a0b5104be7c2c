"""The table of source types: which collector a ``[sources.NAME]`` table with ``type = "..."`` builds.

The table is explicit and lazy: each type names the module and the function that builds its source, and the module
is imported only when a source of that type is built, so a run that reads one file never loads the X client. The
pipeline reads this table; no collector imports the pipeline, so data flows one way (scrapers -> pipeline -> store).
Each type's settings are typed by its model in monitor.settings (chosen by the same ``type``).
"""

from __future__ import annotations

import importlib

import sqlite_utils

from monitor.settings import SOURCE_TYPE_NAMES, Settings, SourceSettings

from .base import Source

# type -> "module:function", where function(name, config, settings, db) returns the Source.
SOURCE_TYPES: dict[str, str] = {
    "file": "scrapers.files:file_source",
    "4cat": "scrapers.research_tools:export_source",
    "zeeschuimer": "scrapers.research_tools:export_source",
    "x": "scrapers.twitter:x_source",
    "mastodon": "scrapers.mastodon:mastodon_source",
    "bluesky": "scrapers.bluesky:bluesky_source",
}
assert set(SOURCE_TYPES) == set(SOURCE_TYPE_NAMES), "every source type needs both a collector and a settings model"


def build_source(name: str, config: SourceSettings, settings: Settings, db: sqlite_utils.Database) -> Source:
    """Build the collector of one [sources.NAME] table; raise ValueError for a type nobody provides."""
    target = SOURCE_TYPES.get(config.type)
    if target is None:
        raise ValueError(f"source {name!r}: unknown type {config.type!r} (available: {', '.join(sorted(SOURCE_TYPES))})")
    module_name, function_name = target.split(":")
    factory = getattr(importlib.import_module(module_name), function_name)
    return factory(name, config, settings, db)
