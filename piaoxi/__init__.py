"""piaoxi: glue at the edge of the system — settings, logging and the `piaoxi` command."""

__version__ = "0.1.0"
