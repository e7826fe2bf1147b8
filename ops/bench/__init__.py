"""Benchmarks: scripts that start the system as a user would and print numbers.
They are not tests; run them by hand (see README, "Benchmarks")."""
