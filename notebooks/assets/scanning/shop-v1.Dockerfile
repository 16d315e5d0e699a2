# The shop's image as it was shipped: it works, and it is a scanner's dream.
FROM labkit/busybox:latest AS unpack
COPY wheels/ /wheels/
RUN mkdir /site && cd /site && unzip -q /wheels/requests-2.19.1-py2.py3-none-any.whl \
    && unzip -q /wheels/urllib3-1.24.1-py2.py3-none-any.whl

FROM labkit/debian:bookworm
MAINTAINER shop-team@example.com
COPY --from=unpack /site/ /usr/local/lib/python3.11/dist-packages/
ADD .env /app/.env
RUN cd /app && echo "settings loaded" && rm /app/.env
CMD ["sh"]
