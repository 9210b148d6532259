# Stand-in for python:3.11-slim built from Debian bookworm's python3 (3.11), for machines that
# reach Debian's archive and PyPI but no container registry. See scripts/compose-standins.sh.
ARG DEBIAN_IMAGE=gradq-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
# Debian marks its python as externally managed; the image is a container, as python:3.11-slim
# is, so pip installs into /usr/local. The host's CA certificates are in the system bundle.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
