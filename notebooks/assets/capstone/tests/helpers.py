import urllib.error
import urllib.request


def get(url):
    """(status, body as text) of one GET request."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
