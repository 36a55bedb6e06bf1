"""`FrameworkPlugin`: the framework hooks of a plugin whose work is done by an OTel instrumentor.

Every framework plugin answers the same three hooks the same way: describe the framework,
instrument it when asked (never raising into the caller), uninstrument it. A plugin module binds
them from one instance::

    from agl_crewai.package import _instruments  # ("crewai >= 1.0, < 2",)

    _plugin = FrameworkPlugin("crewai", instruments=_instruments, extra="crewai",
                              instrumentor="agl_crewai.instrumentor:CrewAIInstrumentor")
    agl_framework_info = _plugin.agl_framework_info
    agl_instrument = _plugin.agl_instrument
    agl_uninstrument = _plugin.agl_uninstrument
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import Any, Iterable, Sequence

from agl_core.plugins.hookspecs import hookimpl

log = logging.getLogger("agentlightning")


def split_requirement(spec: str) -> tuple[str, str]:
    """``"openai >= 2.45, < 3"`` → ``("openai", ">=2.45,<3")``: the distribution and its versions."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", spec)
    if match is None:
        raise ValueError(f"not a requirement: {spec!r}")
    return match.group(1), re.sub(r"\s+", "", match.group(2))


class FrameworkPlugin:
    def __init__(
        self,
        name: str,
        *,
        instruments: Sequence[str],
        extra: str,
        instrumentor: str,
        module: str | None = None,
        aliases: Iterable[str] = (),
        requires: Iterable[str] = ("openai",),
    ) -> None:
        """`requires` names plugins instrumented alongside this one when it is named alone: by
        default the openai plugin, which records the LLM calls most frameworks make through the
        openai client and adds the ``traceparent``/``baggage`` headers to them.

        `instruments` is the plugin's ``package._instruments`` (what its instrumentor's
        ``instrumentation_dependencies()`` returns too): the one place supported versions live.
        `module` is the framework's import name when it is not the distribution's (``agents`` for
        ``openai-agents``): automatic instrumentation waits for that module's import."""
        self.name = name
        package, versions = split_requirement(instruments[0])
        self.info = {
            "name": name,
            "package": package,
            "module": module or package.replace("-", "_"),
            "versions": versions,
            "extra": extra,
        }
        self.aliases = frozenset({name, extra, *aliases})
        self.requires = tuple(r for r in requires if r != name)
        self._instrumentor_path = instrumentor

    def _instrumentor(self) -> Any:
        module, _, cls = self._instrumentor_path.partition(":")
        return getattr(importlib.import_module(module), cls)()

    @hookimpl
    def agl_framework_info(self) -> dict[str, Any]:
        return dict(self.info)

    @hookimpl
    def agl_instrument(self, frameworks: frozenset[str] | None) -> str | None:
        if frameworks is not None and not self.aliases & frameworks:
            return None
        try:
            instrumentor = self._instrumentor()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(skip_dep_check=True)
        except ImportError:
            if frameworks is not None:
                log.warning("%s is not installed: pip install 'agentlightning[%s]'", self.name, self.info["extra"])
            return None
        except Exception:
            log.exception("could not instrument %s", self.name)
            return None
        missing = [r for r in self.requires if frameworks is not None and r not in frameworks]
        if missing:
            from agl_core.plugins.manager import instrument

            instrument(missing)
        return self.name if instrumentor.is_instrumented_by_opentelemetry else None

    @hookimpl
    def agl_uninstrument(self) -> None:
        try:
            instrumentor = self._instrumentor()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        except ImportError:
            pass
        except Exception:
            log.exception("could not uninstrument %s", self.name)
