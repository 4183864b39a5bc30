"""Plug-ins: packages that register stages, sources, models, analyses or report sections.

A plug-in is a function named by an entry point of the group ``vlmbrain.plugins``; it is
called once per process, before a configuration is checked or run. The bundled demo is one
(``vlmbrain.demo.plugin:register``): the core never imports it. A package of yours adds::

    [project.entry-points."vlmbrain.plugins"]
    mine = "mypackage.vlmbrain_plugin:register"
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from vlmbrain.errors import ConfigError

logger = logging.getLogger("vlmbrain")

GROUP = "vlmbrain.plugins"
_loaded: dict[str, str] = {}


def load_plugins() -> dict[str, str]:
    """Call every installed plug-in's ``register`` once; returns ``{name: target}`` of those loaded."""
    for ep in entry_points(group=GROUP):
        if ep.name in _loaded:
            continue
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in names itself, then stops the run
            raise ConfigError(f"plug-in {ep.name!r} ({ep.value}) could not be imported: {exc}") from exc
        register()
        _loaded[ep.name] = ep.value
        logger.debug("plug-in %s loaded from %s", ep.name, ep.value)
    return dict(_loaded)
