"""Drills: the failover drill on pg_auto_failover and the fault table (`chaos`)."""
