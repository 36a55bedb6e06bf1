"""Web dashboard: runs and their training curves, rollouts, traces and resource history."""

from agl_core.dashboard.app import create_dashboard_app, serve_dashboard

__all__ = ["create_dashboard_app", "serve_dashboard"]
