# Several steps touch /srv/app/settings.conf. Which one added it?
FROM labkit/busybox
RUN mkdir -p /srv/app && echo "welcome" > /srv/app/README
RUN echo "log_level=debug" > /srv/app/settings.conf && echo "1.0" > /srv/app/VERSION
RUN rm /srv/app/README
RUN chmod 600 /srv/app/settings.conf
RUN dd if=/dev/zero of=/srv/app/blob bs=1k count=300 2>/dev/null
CMD ["sh"]
