"""CLIPMoLE: :mod:`.model` (the detector), :mod:`.experts` (shared + routed LoRA
mixture, load balancing) and :mod:`.report` (routing tables and plots)."""
