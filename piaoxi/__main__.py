"""`python -m piaoxi`: the same CLI as the `piaoxi` script."""

from piaoxi.cli import main

main()
