#!/usr/bin/env python3
# An agent's HTTP API as the hub's monitor reads it, for tests/hub/run:
#   fake_agent.py PORT SAMPLE_FILE
# Listens on 127.0.0.1:PORT and answers GET /api/v1/sample with the text
# of SAMPLE_FILE (read at each request: the test may change it), as
# application/json; anything else is 404.  The bearer token is not
# checked.  Runs until killed.
import http.server
import sys

port, sample_path = int(sys.argv[1]), sys.argv[2]


class Agent(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/api/v1/sample":
            self.send_response(404)
            self.end_headers()
            return
        with open(sample_path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Agent).serve_forever()
