#!/usr/bin/env python3
# A chat's incoming webhook, for t0250-idle.sh:
#   webhook.py PORT OUT_FILE [FAIL_FIRST]
# Listens on 127.0.0.1:PORT; each POST becomes one line of OUT_FILE, a JSON
# object {"path", "content_type", "body"} (body: the request's text), and
# is answered 200 "ok", as Slack's and Mattermost's hooks answer; the
# first FAIL_FIRST POSTs are answered 503 instead (default 0), so that the
# agent's retries are seen.  Anything else is 405.  Runs until killed.
import http.server
import json
import sys

port, out_path = int(sys.argv[1]), sys.argv[2]
fail_first = int(sys.argv[3]) if len(sys.argv) > 3 else 0


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global fail_first
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        status = 200
        if fail_first > 0:
            fail_first -= 1
            status = 503
        with open(out_path, "a") as out:
            out.write(json.dumps({"path": self.path, "status": status,
                                  "content_type": self.headers.get("Content-Type", ""),
                                  "body": body}) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"busy")

    def do_GET(self):
        self.send_response(405)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
