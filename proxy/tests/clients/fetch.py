# How to try this: HTTPS_PROXY=http://127.0.0.1:7401 SSL_CERT_FILE=<authtap bundle.pem> \
#   python3 fetch.py URL [HEADER:VALUE ...]
# A Python client as SDKs are built: httpx reads HTTPS_PROXY, NO_PROXY and SSL_CERT_FILE from the
# environment. Prints the status and body; exits 3 on a network error.
import sys

import httpx

url, *header_args = sys.argv[1:]
headers = dict(h.split(":", 1) for h in header_args)
try:
    response = httpx.post(url, headers=headers, json={"model": "kimi-k2.5", "messages": []})
except httpx.HTTPError as error:
    print(f"network error: {error!r}")
    sys.exit(3)
print(response.status_code)
print(response.text)
