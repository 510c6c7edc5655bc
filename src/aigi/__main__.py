"""``python -m aigi``, which is what ``accelerate launch -m aigi train RECIPE`` runs in every process."""
from .cli import main

main()
