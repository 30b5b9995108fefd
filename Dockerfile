# ModelGate as a container: one static binary (musl), the admin panel, the
# migrations (also built into the binary) and the CA bundle for HTTPS
# upstreams; nothing else, not even a shell. Built from a context that
# `make image` prepares (the binary is built beforehand, so the build needs
# no base image and no network):
#
#   make image                      # podman; CONTAINER=docker for Docker
#   podman run -p 8080:8080 -e MG_ADMIN_API_KEY=... modelgate:latest
#
# See compose.yaml for the gateway with PostgreSQL and Redis.
FROM scratch

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY modelgate /modelgate
COPY admin /admin
COPY migrations /migrations
# The SQLite default's directory, writable by the gateway's user only.
COPY --chown=10001:10001 data /data

ENV MG_HOST=0.0.0.0 \
    MG_PORT=8080 \
    MG_DB_PATH=/data/modelgate.db \
    MG_ADMIN_DIR=/admin \
    MG_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

USER 10001:10001
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/modelgate", "health"]
ENTRYPOINT ["/modelgate"]
CMD ["serve"]
