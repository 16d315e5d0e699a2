"""Drive a learner's kernel the way their browser does: through the hub's proxy, the server's REST
API and the kernel's websocket, with the learner's own token. The classroom's end-to-end test, the
isolation checks and bench/classroom.py use it (nothing here bypasses the hub)."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: str  # ok | error
    output: str
    error: str = ""
    seconds: float = 0.0


@dataclass
class LearnerKernel:
    base: str  # http://127.0.0.1:8000/user/NAME/
    token: str
    kernel_id: str = ""
    ws: object = None
    log: list = field(default_factory=list)

    def _rest(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(self.base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return json.loads(text) if text else None

    async def open(self, path: str = "") -> "LearnerKernel":
        """Start a kernel (in the directory `path` of the server's root, like a notebook there)."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        self.kernel_id = (await asyncio.to_thread(self._rest, "POST", "api/kernels", {"name": "python3", "path": path}))["id"]
        ws_url = self.base.replace("http", "ws", 1) + f"api/kernels/{self.kernel_id}/channels"
        self.ws = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {self.token}"}))
        return self

    async def run(self, code: str, timeout: float = 300) -> Reply:
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "", "session": uuid.uuid4().hex,
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        begin, out, status, error, idle = time.monotonic(), [], "", "", False
        while not (status and idle):
            left = timeout - (time.monotonic() - begin)
            if left <= 0:
                raise TimeoutError(f"no reply within {timeout:.0f} s to: {code[:80]}")
            raw = await asyncio.wait_for(self.ws.read_message(), left)
            if raw is None:
                raise ConnectionError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        reply = Reply(status, "".join(out), error, time.monotonic() - begin)
        self.log.append(reply)
        return reply

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.kernel_id:
            await asyncio.to_thread(self._rest, "DELETE", f"api/kernels/{self.kernel_id}")


def notebook_cells(path, solutions: bool = True) -> list[str]:
    """The code cells a learner runs, in order: with the reference solutions, without Jupyter's
    parameters cell."""
    nb = json.loads(open(path).read())
    cells = []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or "parameters" in tags or ("solution" in tags and not solutions):
            continue
        cells.append("".join(cell["source"]))
    return cells
