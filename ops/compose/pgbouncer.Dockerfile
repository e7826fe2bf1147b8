# Debian's PgBouncer for compose.yaml: transaction pooling in front of the primary.
# Runs as the package's unprivileged `postgres` account; the userlist is written at start
# from POSTGRES_PASSWORD (never baked into the image).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends pgbouncer postgresql-client \
 && rm -rf /var/lib/apt/lists/*
COPY ops/compose/pgbouncer.ini /etc/pgbouncer/pgbouncer.ini
USER postgres
EXPOSE 6432
ENTRYPOINT ["sh", "-c", "umask 077 && printf '\"smsgw\" \"%s\"\\n' \"$POSTGRES_PASSWORD\" > /tmp/userlist.txt && exec pgbouncer /etc/pgbouncer/pgbouncer.ini"]
