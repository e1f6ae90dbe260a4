"""The installed distribution's version, for the user agent."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("portico")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
