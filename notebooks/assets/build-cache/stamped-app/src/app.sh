#!/bin/sh
echo "stamped app, libraries: $(ls /opt/deps | tr '\n' ' ')"
cat /app/build-info.txt
