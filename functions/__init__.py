"""Trigger adapters: parse the trigger, call the engine in ``shared/``, shape the response."""
