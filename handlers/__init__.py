"""Thin trigger handlers: decode the trigger input, call ``shared``, return.

One module per trigger family. No Azure SDK import at module level.
"""
