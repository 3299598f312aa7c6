"""Tests that prove the deployment artifacts in deploy/ with their real consumers."""
