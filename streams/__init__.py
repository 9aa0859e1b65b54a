"""The faust app and its agents; each text stage is a plain function module."""
