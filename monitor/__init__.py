"""Weerbaar: watch public social media for aggression against Dutch local and regional politicians who opted in."""

__version__ = "0.1.0"
