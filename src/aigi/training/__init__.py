"""Generic training: the run around any trainer (:mod:`.run`), what trainers get
(:mod:`.trainer`), the step loop every gradient trainer runs in (:mod:`.loop`: resume,
micro-batches, processes, precision) and its accelerate side (:mod:`.distributed`), the
``features`` and ``pixels`` trainers, validation and keep-best, checkpoints, and ensemble
recipes. Methods with a trainer of their own keep it in their folder under :mod:`aigi.methods`,
as a :class:`~.loop.Task`."""
