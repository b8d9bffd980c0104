"""The local Azure: an HTTPS emulator of the Azure APIs Keyguard uses (test infrastructure).

Never deployed. See ``local/azure/README.md``.
"""
