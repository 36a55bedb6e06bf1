"""The ``agl_trl`` plugin of Agent Lightning (entry point ``agl_trl = "agl_trl.plugin"``).

A plain module of hookimpls; keep imports light — it loads with every ``agent-lightning`` command.
"""

from __future__ import annotations

from typing import Any

from agl_core.hookspecs import hookimpl


@hookimpl
def agl_cli_commands() -> list[Any]:
    from agl_trl.serve_cli import serve

    return [serve]
