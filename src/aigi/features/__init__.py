"""The feature cache: frozen backbone outputs computed once per image and kept on disk."""
from .cache import ExtractResult, FeatureCache, FeatureStore

__all__ = ["ExtractResult", "FeatureCache", "FeatureStore"]
