#!/bin/bash
# Lets the replica stream from the primary (run once by the postgres image at init).
set -euo pipefail
echo "host replication smsgw all scram-sha-256" >> "$PGDATA/pg_hba.conf"
