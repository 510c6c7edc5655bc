"""Generic training: the run around any trainer (:mod:`.run`), what trainers get
(:mod:`.trainer`), the ``features`` and ``pixels`` trainers, validation and
keep-best, checkpoints, mixed precision, and ensemble recipes. Methods with a
trainer of their own keep it in their folder under :mod:`aigi.methods`."""
