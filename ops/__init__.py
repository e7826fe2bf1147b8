"""Running the gateway: the `smsgw` CLI, the embedded PostgreSQL, benchmarks and helpers."""
