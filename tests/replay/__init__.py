"""Recorded real Azure traffic replayed to Keyguard's SDK-facing code, and fidelity checks of
the local Azure against the same recordings (issue "Real Azure as the oracle")."""
