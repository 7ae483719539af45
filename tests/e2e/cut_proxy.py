"""A TCP proxy that can cut every connection through it at once, with a reset (SO_LINGER 0), so a client loses
requests in flight and answers already on their way: the broker has appended a batch whose acknowledgement never
arrives, and the client's retry must be recognised as a duplicate."""

from __future__ import annotations

import socket
import struct
import threading
import time

BUFFER_BYTES = 64 * 1024


class CutProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.live: list[socket.socket] = []
        self.cuts = 0
        self.closed = False
        # While set, answers from the broker are dropped: requests sent meanwhile are served but never acknowledged.
        self.swallow_answers = threading.Event()
        threading.Thread(target=self._accept, name="cut-proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.live += [client, server]
            for src, dst, answers in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, answers), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while True:
                data = src.recv(BUFFER_BYTES)
                if not data:
                    break
                if answers and self.swallow_answers.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._reset(src)
            self._reset(dst)

    def _reset(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass
        with self.lock:
            if sock in self.live:
                self.live.remove(sock)

    def cut_all(self, swallow_s: float = 0.0) -> int:
        """Drops the broker's answers for `swallow_s`, then resets every live connection; returns how many sockets
        were cut."""
        if swallow_s > 0:
            self.swallow_answers.set()
            time.sleep(swallow_s)
        with self.lock:
            doomed = list(self.live)
            self.cuts += 1
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._reset(sock)
        self.swallow_answers.clear()
        return len(doomed)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut_all()
