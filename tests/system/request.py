#!/usr/bin/env python3
# One request to the agent's socket as a host uid, sent as any program
# could send it (docs/protocol.md), for the tests that ask what the CLI
# would never send:
#   request.py SOCKET UID JSON
# Prints the agent's final message (after any progress) as one JSON line;
# exits 1 when the agent closes the connection without one.  The process
# drops from root to UID (groups dropped too) before it connects: the
# agent takes the peer's uid from the kernel at connect().
import json
import os
import socket
import struct
import sys

path, uid, body = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(struct.pack(">I", len(body)) + body)


def read(n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            sys.exit("the agent closed the connection without an answer")
        data += more
    return data


while True:
    msg = json.loads(read(struct.unpack(">I", read(4))[0]))
    if "progress" not in msg:
        print(json.dumps(msg))
        break
