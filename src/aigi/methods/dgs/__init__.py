"""DGS-Net: :mod:`.model` (student, heads, frozen branches), :mod:`.trainer` (the
``dgs`` trainer), :mod:`.surgery` (gradient surgery) and :mod:`.captions`."""
