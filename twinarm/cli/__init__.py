"""The `twinarm` command line."""
