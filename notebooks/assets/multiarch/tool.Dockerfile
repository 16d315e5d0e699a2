# The CI job's Dockerfile for `tool`: one build per platform, BASE chooses the platform's busybox
ARG BASE
FROM ${BASE}
ARG VERSION
LABEL org.opencontainers.image.version=${VERSION}
RUN echo "tool ${VERSION}" > /version
CMD ["sh", "-c", "echo $(cat /version) on $(uname -m)"]
