"""How inputs are decoded for scoring (``aigi detect --decode``). Kept free of torch and
Pillow imports: ``aigi detect`` checks the choice before anything heavy loads."""
from __future__ import annotations

from ..errors import InputError

DECODES = ("full", "draft")  # draft: large JPEGs at a DCT scale, for views that resize anyway
DRAFT_MARGIN = 2  # draft decoding keeps at least twice the tower's input size: the resize still antialiases


def check_decode(decode: str) -> None:
    if decode not in DECODES:
        raise InputError(f"unknown decode '{decode}' (valid: {', '.join(DECODES)})")


def draft_side(decode: str, resizes: bool, input_size: int) -> int | None:
    """The short side a draft decode keeps (``None``: decode in full). Only views that resize
    may draft: a native crop must see the file's own pixels."""
    return DRAFT_MARGIN * input_size if decode == "draft" and resizes else None
