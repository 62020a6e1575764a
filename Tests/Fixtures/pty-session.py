"""Drives an interactive shell on a terminal, for cell-runtime's terminal tests.

    python3 pty-session.py COMMAND [ARG...]

Runs COMMAND as the session leader of a new pty (as a user at a terminal runs `podman run -it`),
waits for the shell's prompt, types `tty; echo marker-$((6*7))` and then `exit 5`, and prints
one JSON object: what the terminal showed ("output", the typed echo included, so only the
shell's own arithmetic prints marker-42) and COMMAND's exit status ("status").
"""
import json
import os
import pty
import select
import sys
import time

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])

seen = b""


def read_until(token, seconds):
    """Reads what the terminal shows until `token` appears (True), or the time is up or the
    terminal's other side closes (False)."""
    global seen
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if token is not None and token in seen:
            return True
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every process on the terminal's side is gone
            return False
        if not chunk:
            return False
        seen += chunk
    return token is not None and token in seen


prompt = read_until(b"# ", 90)
os.write(fd, b"tty; echo marker-$((6*7))\r")
read_until(b"marker-42", 30)
os.write(fd, b"exit 5\r")
read_until(None, 60)
for _ in range(600):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
print(json.dumps({"output": seen.decode("utf-8", "replace"), "prompt": prompt, "status": os.waitstatus_to_exitcode(status)}))
