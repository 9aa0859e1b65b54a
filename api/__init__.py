"""The read-only query service and its web page."""
