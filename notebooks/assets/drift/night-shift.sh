# What the on-call engineer typed on the shop server one night (recovered from the shell history).
sed -i 's/^port = 8080$/port = 8081/' /etc/shop/shop.ini
chmod 0666 /etc/shop/shop.ini
printf '#!/bin/sh\n# restart the shop without a deployment\npkill -f shop-app || true\n' > /usr/local/bin/shop-hotfix
chmod 0755 /usr/local/bin/shop-hotfix
