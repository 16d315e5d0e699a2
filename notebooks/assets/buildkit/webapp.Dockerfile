# A web app in three stages. `sleep` stands in for a compiler and a bundler: what this
# notebook measures is how the builder schedules the stages, not the work inside them.
FROM labkit/busybox AS deps
RUN echo "compiling dependencies" && sleep 2 && mkdir -p /out && echo deps > /out/deps

FROM labkit/busybox AS assets
RUN echo "bundling web assets" && sleep 2 && mkdir -p /out && echo assets > /out/assets

# The slow test suite: nothing below copies from this stage.
FROM labkit/busybox AS test
RUN echo "running the slow test suite" && sleep 2

FROM labkit/busybox
COPY --from=deps /out/deps /app/deps
COPY --from=assets /out/assets /app/assets
CMD ["cat", "/app/deps", "/app/assets"]
