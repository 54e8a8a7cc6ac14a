"""A --console-socket server, as conmon runs one: receives the pty master."""
import array
import os
import socket
import tempfile
import threading


class ConsoleSocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="husk-console-")
        self.path = os.path.join(self.dir, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.master = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.sock.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:fds.itemsize])
        self.master = fds[0] if fds else None
        conn.close()

    def wait_master(self, timeout=10):
        self.thread.join(timeout)
        return self.master

    def read_all(self, timeout=10):
        import select
        import time
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.2)
            if not r:
                if out:
                    break
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def close(self):
        if self.master is not None:
            os.close(self.master)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)
