"""FeatDistill experts: :mod:`.model` (tuned tower + MLP head), :mod:`.trainer`
(the ``two_stage`` trainer, resumable), :mod:`.distillation` (l2 / crd / none)
and :mod:`.contrastive` (momentum teacher, negative queue, InfoNCE)."""
