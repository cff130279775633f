"""The knowledge base: versioned clinical data (``data/``) and its schema-checked loader."""

from .loader import load_knowledge
from .model import Knowledge

__all__ = ["Knowledge", "load_knowledge"]
