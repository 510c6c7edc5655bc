"""Recipes: YAML loading and overrides (:mod:`.loading`), typed checking
(:mod:`.checked`) and the recipe's sections with their defaults (:mod:`.recipe`)."""
from ..errors import ConfigError
from .loading import (
                      ENSEMBLE_KEYS,
                      apply_overrides,
                      apply_recipe_overrides,
                      load_yaml,
                      merge,
                      parse_yaml,
                      resolve,
)

__all__ = ["ConfigError", "ENSEMBLE_KEYS", "apply_overrides", "apply_recipe_overrides", "load_yaml", "merge",
           "parse_yaml", "resolve"]
