"""LTD, layer transition discrepancy: :mod:`.model` (window selection, the shared
block, the head) and :mod:`.report` (window, selection, transition plots)."""
