"""Runs a command on a new pseudo-terminal, as a person at a terminal would, and answers the
agent's permission questions (for tests/e2e_permissions.rs). Prints one JSON object: the exit
code, how many questions were asked, and everything the terminal showed.

    pty_approve.py ANSWERS_JSON COMMAND [ARGS...]

ANSWERS_JSON is a list of lines to type, one per question; a question beyond them is answered
"n" (and counted), so a test sees it rather than hanging.
"""
import json
import os
import pty
import select
import signal
import sys
import time

PROMPT = b"Run it? [y] once"


def main():
    answers = json.loads(sys.argv[1])
    command = sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    out = b""
    asked = 0
    deadline = time.time() + 900
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if fd not in ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
        while out.count(PROMPT) > asked:
            line = answers[asked] if asked < len(answers) else "n"
            os.write(fd, (line + "\n").encode())
            asked += 1
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({
        "exit": os.waitstatus_to_exitcode(status),
        "asked": asked,
        "output": out.decode(errors="replace"),
    }))


if __name__ == "__main__":
    main()
