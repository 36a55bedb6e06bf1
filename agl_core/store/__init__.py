from agl_core.store.base import LightningStore, StoreError

__all__ = ["LightningStore", "StoreError"]
