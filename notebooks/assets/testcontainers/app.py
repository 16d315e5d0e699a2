"""inventory: stock counts over HTTP (GET /stock/<item>, POST /stock/<item> {"delta": n})."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOCK = {}
SEED = "/data/seed.json"
if os.path.exists(SEED):
    with open(SEED) as f:
        STOCK.update(json.load(f))


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def item(self):
        prefix = "/stock/"
        return self.path[len(prefix):] if self.path.startswith(prefix) and len(self.path) > len(prefix) else None

    def do_GET(self):
        item = self.item()
        if item is None:
            return self.reply(404, {"error": "unknown path"})
        self.reply(200, {"item": item, "count": STOCK.get(item, 0)})

    def do_POST(self):
        item = self.item()
        if item is None:
            return self.reply(404, {"error": "unknown path"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        new = STOCK.get(item, 0) + int(body.get("delta", 0))
        if new < 0:  # CHECK
            return self.reply(409, {"error": "not enough stock", "count": STOCK.get(item, 0)})  # CHECK
        STOCK[item] = new
        self.reply(200, {"item": item, "count": new})

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
print("inventory listening on 8000", flush=True)
server.serve_forever()
