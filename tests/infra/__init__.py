"""Offline checks of the Bicep in infra/ (parse, checkov, drift against the app's names)."""
