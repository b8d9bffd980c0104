"""Pinning: keep every key and secret version a backup still needs enabled, undeleted and
marked as needed; release the marks when the last recovery point needing them expires."""
