# Stand-in for redis:7-alpine built from Debian bookworm's redis-server (7.0): same command line,
# data in /data, runs as user redis, protected mode off as the official entrypoint does.
ARG DEBIAN_IMAGE=gradq-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
