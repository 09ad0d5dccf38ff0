#!/usr/bin/env python3
"""A fake systemd notify socket for the sd_notify tests (test/notify.test.ts).

Binds an AF_UNIX datagram socket at argv[1], prints "bound", then one JSON line per datagram:
{"pid": sender pid from SCM_CREDENTIALS, "fields": {"READY": "1", ...}, "text": raw text}.
Passed file descriptors (systemd-notify's BARRIER=1) are closed as the manager closes them, which ends the
barrier. Node has no AF_UNIX datagram sockets, hence Python (the CI installs python3).
"""
import array
import json
import os
import socket
import struct
import sys

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("bound", flush=True)
fd_space = socket.CMSG_SPACE(16 * array.array("i").itemsize)
cred_space = socket.CMSG_SPACE(struct.calcsize("iII"))
while True:
    data, ancillary, _flags, _addr = sock.recvmsg(65536, fd_space + cred_space)
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[: struct.calcsize("iII")])[0]
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
            for fd in fds:
                os.close(fd)
    text = data.decode("utf-8", "replace")
    fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
    print(json.dumps({"pid": pid, "fields": fields, "text": text}), flush=True)
