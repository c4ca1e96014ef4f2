"""A Python client for the interop check: the standard library's ssl and http.client."""
import http.client
import ssl
import sys

url_host, port, cert, key, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
conn = http.client.HTTPSConnection(url_host, port, context=ctx, timeout=10)
conn.request("GET", "/")
resp = conn.getresponse()
body = resp.read().decode()
print("status", resp.status)
print(body, end="")
sys.exit(0 if resp.status == 200 else 1)
