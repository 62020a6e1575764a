"""A client that sends its exec request one byte a second, while a real one asks too.

    python3 slow-exec-client.py EXEC_SOCKET COMMAND [ARG...]

Connects to a container's exec socket (cell-runtime's ProcessService), sends the request byte
and then one byte a second for 20 seconds, never a whole request; meanwhile runs COMMAND (a
`podman exec`). Prints JSON: COMMAND's status, output and how long it took, and what the slow
client was told. A monitor that waited for the slow request would hold COMMAND for the whole
drip, and the container's notified calls with it.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

# The socket's path is longer than sun_path: reached through its directory, as cell does.
directory = os.open(os.path.dirname(sys.argv[1]), os.O_PATH | os.O_DIRECTORY)
slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
slow.connect("/proc/self/fd/%d/%s" % (directory, os.path.basename(sys.argv[1])))
slow.sendall(b"X")


def drip():
    for _ in range(20):
        try:
            slow.send(b"\x1f")
        except OSError:
            return
        time.sleep(1)


dripper = threading.Thread(target=drip, daemon=True)
dripper.start()
time.sleep(0.5)
start = time.monotonic()
r = subprocess.run(sys.argv[2:], capture_output=True, text=True)
took = time.monotonic() - start
slow.settimeout(30)
try:
    told = slow.recv(200).decode()
except OSError as e:
    told = "nothing: " + str(e)
print(json.dumps({"status": r.returncode, "out": r.stdout, "err": r.stderr, "took": took, "told": told}))
