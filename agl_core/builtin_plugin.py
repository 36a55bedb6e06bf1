"""The core's own hookimpls (built-in task sets and agent types are added by their modules)."""
