"""Upstream adapters: each takes a batch of messages and returns a result per message."""
