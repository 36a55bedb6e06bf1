"""Web dashboard: runs and their training curves, rollouts, traces and resource history."""

from agl_core.dashboard.app import create_dashboard_app, serve_dashboard
from agl_core.dashboard.auth import DashboardAuthError

__all__ = ["DashboardAuthError", "create_dashboard_app", "serve_dashboard"]
