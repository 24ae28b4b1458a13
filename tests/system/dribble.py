#!/usr/bin/env python3
# The slow-request attack on the agent's socket, for t0160 and bench/control:
#   dribble.py SOCKET UID COUNT SECONDS READY_FILE [again]
# As host uid UID, open COUNT connections to SOCKET, send each a frame
# header announcing 100 bytes, then one more byte every 2 s, for at most
# SECONDS.  READY_FILE gets "connected N" once every connection is made.
# Prints one line per connection: "answer: <the agent's first message>",
# "closed" (the agent closed it without a word), or "open" (still open at
# the end).  With "again", a connection the agent answered is made anew a
# second later, and each answer is printed as it comes, until SECONDS.  The socket is reached through a descriptor opened before
# dropping root (a state directory is root's alone); the kernel takes the
# peer's credentials at connect(), after the drop, as for a process inside
# the container.
import os
import select
import socket
import sys
import time

path, uid, count, seconds, ready = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                    float(sys.argv[4]), sys.argv[5])
again = sys.argv[6:] == ["again"]
fd = os.open(path, os.O_PATH)
ready_file = open(ready, "w")
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/proc/self/fd/%d" % fd)
    try:
        s.sendall(b"\0\0\0\x64")
    except OSError:
        pass
    return s

conns = [connect() for _ in range(count)]
ready_file.write("connected %d\n" % len(conns))
ready_file.close()

outcome = {}
live = {s: b"" for s in conns}
pending = []                       # (time, count) of connections to make anew
end = time.monotonic() + seconds
next_byte = time.monotonic() + 2
while (live or pending) and time.monotonic() < end:
    readable, _, _ = select.select(list(live), [], [], 0.2)
    for s in readable:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            # The agent closed with our trickle unread: the end, after
            # whatever it said first.
            data = b""
        if data:
            live[s] += data
            continue
        got = live.pop(s)
        outcome[s] = "answer: " + got[4:].decode(errors="replace") if got else "closed"
        if again:
            print(outcome[s], flush=True)
            s.close()
            pending.append(time.monotonic() + 1)
    while pending and pending[0] <= time.monotonic():
        pending.pop(0)
        live[connect()] = b""
    if time.monotonic() >= next_byte:
        next_byte += 2
        for s in list(live):
            try:
                s.sendall(b" ")
            except OSError:
                pass
if not again:
    for s in conns:
        print(outcome.get(s, "open"))
