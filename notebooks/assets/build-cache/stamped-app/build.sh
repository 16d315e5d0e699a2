#!/bin/sh
# What CI runs for every commit: stamp the build, then build the image.
# Usage: ./build.sh [TAG]
set -e
cd "$(dirname "$0")"
now=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
echo "commit ${GIT_COMMIT:-unknown}, built $now" > build-info.txt
docker build -t "${1:-stamped-app}" --build-arg BUILD_DATE="$now" .
