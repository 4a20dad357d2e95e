"""``python -m gateway`` = ``share-gateway``."""

from gateway.cli import main

main()
