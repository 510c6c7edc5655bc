"""Scoring engines beyond one process: ``aigi detect --engine NAME`` (the registry's
:data:`aigi.registry.ENGINES`). The default engine, one process with a decode thread, is
:mod:`aigi.scoring`."""
