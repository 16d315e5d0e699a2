#!/bin/sh
# The team's CI job, copied from the CI configuration: the whole suite in the test-runner image,
# with the engine's socket so that the tests can start the service (CI checks out to /src).
docker run --rm --user "$(id -u):$(id -g)" \
  -v "${DOCKER_HOST#unix://}:/var/run/docker.sock" \
  -v "$PWD:/src" -w /src \
  -e SERVICE_IMAGE="$LAB_PREFIX-inventory:fixed" -e TESTCONTAINERS_RYUK_DISABLED=true \
  -e TESTCONTAINERS_CONNECTION_MODE=bridge_ip \
  "$LAB_PREFIX-test-runner" python3 -m pytest -q --tb=line -p no:cacheprovider -p no:warnings --junitxml=wormhole.xml
