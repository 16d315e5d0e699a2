#!/bin/sh
# The app: it starts only with the library the build fetched.
if [ ! -f /app/lib/private-lib ]; then
  echo "app: /app/lib/private-lib is missing: the build did not fetch it" >&2
  exit 1
fi
echo "app 1.0 is up, with $(cat /app/lib/private-lib)"
