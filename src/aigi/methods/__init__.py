"""One folder per method, owning everything it needs: model and heads, its own
trainer if it has one, its adapters, its report. Methods are found through
:mod:`aigi.registry` (lazily: importing :mod:`aigi` imports none of them).

=============  ==========================================  =======================
method         what                                        trainer
=============  ==========================================  =======================
univfd         linear probe / k-NN on the frozen embedding  features / bank
ltd            layer transition discrepancy                 features
mole           mixture of shared and routed LoRA experts    features (pixels with augmentation)
dgs            LoRA + distillation-guided gradient surgery  dgs (its own)
featdistill    tuned tower + MLP head, two-stage distill    two_stage (its own)
=============  ==========================================  =======================
"""
