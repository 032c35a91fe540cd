"""Helpers shared by test modules (imported as ``tests.helpers.<module>``)."""
