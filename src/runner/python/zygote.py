"""baton's warm Python worker (the "zygote"): forks one child per handler run.

Started as `python -u -c <loader> <folder> <program>`: the loader imports this file from
`<program>`, which also holds `bootstrap.py` (the handler bootstrap), and calls
`Zygote().serve()`; `<folder>` is a private (0700) folder where this process listens,
`<folder>/zygote.sock`. It imports the bootstrap and the stdlib modules it needs once, then never
imports user code.

Per connection, one handler run:

- in: a 4-byte big-endian length and that many bytes of JSON, the bootstrap's request unchanged
  (protocol 1; `result_path` only places the folder for downloaded inputs, created when one is),
  or `{"kind": "program", "file", "argv", "cwd"}` to run a Python file of baton's own as a
  program (the workflow tracer), its result being its exit code,
  sent with three descriptors attached (SCM_RIGHTS): the write end of the run's log pipe, the
  read end of the run's watch pipe (see the bootstrap's `_die_with_runner`), and the write end of
  the run's result pipe, where the child writes the result's JSON instead of a file;
- out: one JSON line `{"pid": N}` once the child is forked (it leads its own process group, whose
  id is N), then one line `{"exit": code}` or `{"signal": number}` once it has exited, its group
  has been killed and it has been reaped; or one line `{"error": text}` when no child was started.

While it has nothing else to do, this process forks the next run's child ahead of time: a spare
that sets its process group, closes this process's descriptors and waits on a socket pair for a
run. A request is handed to the spare (its JSON and descriptors, the same way they came in) when
there is one, so the fork is off the run's path; otherwise, as in a burst of requests, the child is
forked then. A spare whose worker is gone reads the end of its socket and leaves.

The child sets its process group, its working directory (the bootstrap's `run_request` does),
points stdout and stderr at the log pipe, runs the handler, closes its output, writes the result
and leaves with `os._exit` (threads the handler left behind end with it). This process reaps
every child, and kills its group first, while the unreaped leader still holds the group id. A
connection closed by the runner before the exit is reported cancels the run: the child's group is
killed at once (the runner closes it as soon as it has the whole result and output, so a child
may be on its way out then). When its stdin closes (the runner's process is gone), it kills every
child's group and exits.
"""

import sys

sys.path[:] = [p for p in sys.path if p not in ("", ".")]

import importlib.util
import os

_FOLDER = sys.argv[1]
_PROGRAM = sys.argv[2]
_spec = importlib.util.spec_from_file_location("baton_bootstrap", os.path.join(_PROGRAM, "bootstrap.py"))
bootstrap = importlib.util.module_from_spec(_spec)
sys.modules["baton_bootstrap"] = bootstrap
_spec.loader.exec_module(bootstrap)

# What a fresh bootstrap process would have imported by the time it runs the handler (the watch
# on the runner needs `fcntl`, or `signal` and `threading` where that is not available). A child
# forgets every other module this process imports for itself, so a payload's `json.py` or
# `select.py` is found exactly as in a fresh process.
bootstrap._stdlib("fcntl")
bootstrap._stdlib("signal")
bootstrap._stdlib("threading")
_BASELINE = set(sys.modules)

import _socket
import json
import select
import signal
import struct

_MAX_REQUEST = 64 * 1024 * 1024

_own_modules = ((), -1)

# The C socket module, not `socket`: what this process needs of it fits in the two helpers
# below, and `socket` (its enums) costs about 3 ms of every worker's start and a larger heap
# for every fork to copy.
_FD_SIZE = struct.calcsize("i")


def _recv_fds(sock, size, max_fds, flags=0):
    """Up to `size` bytes from `sock` and the descriptors sent with them (`SCM_RIGHTS`):
    (data, [fd, ...]), as `socket.recv_fds`."""
    data, ancillary, _flags, _addr = sock.recvmsg(size, _socket.CMSG_LEN(max_fds * _FD_SIZE), flags)
    fds = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(payload) // _FD_SIZE
            fds.extend(struct.unpack("{}i".format(count), payload[: count * _FD_SIZE]))
    return data, fds


def _send_fds(sock, data, fds):
    """Sends (a first part of) `data` on `sock` with `fds` attached; the bytes sent."""
    rights = struct.pack("{}i".format(len(fds)), *fds)
    return sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])


def _unix_socket(fd=None):
    """A stream Unix socket, or the one descriptor `fd` holds."""
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)


def _own_module_names():
    """The modules this process imported beyond the baseline, which a child forgets. Computed
    here, once per change, not in each child: every module name the child touches is a page it
    copies."""
    global _own_modules
    names, count = _own_modules
    if count != len(sys.modules):
        names = tuple(set(sys.modules) - _BASELINE)
        _own_modules = (names, len(sys.modules))
    return names


def _recv_exactly(conn, size, fds):
    data = b""
    while len(data) < size:
        chunk, more = _recv_fds(conn, size - len(data), 4)
        if not chunk:
            raise EOFError("the runner closed the connection mid-request")
        data += chunk
        fds.extend(more)
    return data


def _read_request(conn):
    """The request, its JSON text and the descriptors sent with it:
    (request, text, [log_fd, watch_fd, result_fd])."""
    fds = []
    try:
        (size,) = struct.unpack(">I", _recv_exactly(conn, 4, fds))
        if size > _MAX_REQUEST:
            raise ValueError("request of {} bytes is too large".format(size))
        text = _recv_exactly(conn, size, fds)
        request = json.loads(text)
        if len(fds) != 3:
            raise ValueError("expected 3 descriptors with the request, got {}".format(len(fds)))
        return request, text, fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _send(conn, message):
    try:
        conn.sendall((json.dumps(message) + "\n").encode())
    except OSError:
        pass  # the runner is gone; nobody to tell


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _run_program(request):
    """Runs the Python file `request["file"]` as `python -B <file> <argv...>` would, in
    `request["cwd"]`; its exit code. Its compiled code is kept beside it (a file of baton's own,
    in the cache), so a later run does not compile it again."""
    path = request["file"]
    os.chdir(request["cwd"])
    sys.argv[:] = [path] + list(request["argv"])
    if not os.path.exists(importlib.util.cache_from_source(path)):
        import py_compile

        py_compile.compile(path, doraise=False)
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("__main__", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__main__"] = module
    try:
        spec.loader.exec_module(module)
        code = 0
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except BaseException:
        bootstrap._print_traceback()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _become_child(keep_out, forget):
    """In a forked child, before its run: leave this process's group, signals and descriptors
    (those in `keep_out`), and forget the modules in `forget` (this process's own)."""
    os.setpgid(0, 0)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in keep_out:
        try:
            os.close(fd)
        except OSError:
            pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for name in forget:
        sys.modules.pop(name, None)
    sys.argv[:] = ["-c"]


def _run_child(request, fds):
    """In a forked child ready for its run (`_become_child`): run it, with its output on the log
    pipe, and write its result; the exit code to leave with."""
    log_fd, watch_fd, result_fd = fds
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    bootstrap._die_with_runner(watch_fd)
    if request.get("kind") == "program":
        os.close(result_fd)
        return _run_program(request)
    result = bootstrap.run_request(request)
    text = bootstrap._result_text(result).encode()
    # The output ends here, then the result: the runner has the whole run once both pipes are
    # closed, without waiting for this process's exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os.close(1)
    os.close(2)
    _write_all(result_fd, text)
    os.close(result_fd)
    return 0 if result["state"] == "completed" else 1


def _child(keep_out, forget, get_run):
    """In a forked child: get ready, get its run from `get_run()` (the request and its
    descriptors, or `(None, [])` for none), run it and leave. Never returns."""
    code = 1
    try:
        _become_child(keep_out, forget)
        request, fds = get_run()
        code = 0 if request is None else _run_child(request, fds)
    except BaseException as err:
        _report_failure(err)
    finally:
        os._exit(code)


def _read_handover(sock):
    """What the worker sends a spare, read up to the end of `sock`: the request and the
    descriptors that came with it, or `(None, [])` when the worker let the spare go."""
    chunks, fds = [], []
    while True:
        try:
            chunk, more = _recv_fds(sock, 65536, 3)
        except InterruptedError:
            continue
        fds.extend(more)
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    if not chunks:
        return None, []
    if len(fds) != 3:
        raise ValueError("expected 3 descriptors with the handed-over run, got {}".format(len(fds)))
    return json.loads(b"".join(chunks)), fds


def _report_failure(err):
    try:
        os.write(2, "[baton] the warm worker's child failed: {!r}\n".format(err).encode())
    except OSError:
        pass


def _exited(pid):
    """Whether child `pid` has exited; it is left unreaped, so its id still names its group."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False  # not a child of this process (any more): nothing to reap


class Zygote:
    def __init__(self):
        self.listener = _unix_socket()
        path = os.path.join(_FOLDER, "zygote.sock")
        old = os.umask(0o177)
        try:
            self.listener.bind(path)
        finally:
            os.umask(old)
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.poll = select.epoll()
        # fd -> what its readiness means: "accept", "child", "stdin", or a child's pid.
        self.watched = {}
        self.watch(self.listener.fileno(), "accept")
        self.watch(self.wake_read, "child")
        self.watch(0, "stdin")
        # pid -> the connection its exit is reported on (None once the runner hung up).
        self.children = {}
        # The next run's child, forked ahead: (pid, this end of its socket pair), or None.
        self.spare = None
        # Whether to fork a spare once idle (not again after a fork failed, until a request).
        self.want_spare = True

    def watch(self, fd, what):
        self.poll.register(fd, select.EPOLLIN)
        self.watched[fd] = what

    def unwatch(self, fd):
        self.poll.unregister(fd)
        del self.watched[fd]

    def own_fds(self):
        fds = [self.listener.fileno(), self.wake_read, self.wake_write, self.poll.fileno()]
        fds.extend(c.fileno() for c in self.children.values() if c is not None)
        if self.spare is not None:
            fds.append(self.spare[1].fileno())
        return fds

    def fork_spare(self):
        """Forks the next run's child ahead of its request, while there is nothing else to do."""
        self.want_spare = False
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        forget = _own_module_names()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:
            # The spare waits for the run this process hands over on `theirs`.
            _child(self.own_fds() + [ours.fileno()], forget, lambda: _read_handover(theirs))
        theirs.close()
        try:
            os.setpgid(pid, pid)  # also done by the spare: whichever runs first
        except OSError:
            pass
        self.spare = (pid, ours)

    def hand_over(self, text, fds):
        """Hands a run to the spare, if there is one; the spare's pid, or None."""
        if self.spare is None:
            return None
        pid, sock = self.spare
        self.spare = None
        try:
            sent = _send_fds(sock, text, fds)
            sock.sendall(text[sent:])
        except OSError:
            self.release(pid, sock)
            return None
        sock.close()
        return pid

    def release(self, pid, sock):
        """Lets a spare go: it reads the end of its socket and leaves; its group is killed and it
        is reaped."""
        sock.close()
        self.kill_group(pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def accept(self):
        try:
            conn_fd, _ = self.listener._accept()
        except (BlockingIOError, InterruptedError):
            return
        conn = _unix_socket(conn_fd)
        conn.setblocking(True)
        conn.settimeout(10)
        try:
            request, text, fds = _read_request(conn)
        except Exception as err:
            _send(conn, {"error": "bad request: {}".format(err)})
            conn.close()
            return
        self.want_spare = True
        pid = self.hand_over(text, fds)
        if pid is None:
            pid = self.fork_child(conn, request, fds)
            if pid is None:
                return
        for fd in fds:
            os.close(fd)
        _send(conn, {"pid": pid})
        conn.setblocking(False)
        self.children[pid] = conn
        self.watch(conn.fileno(), pid)

    def fork_child(self, conn, request, fds):
        """Forks a child for `request` now; its pid, or None (the runner told) when fork failed."""
        sys.stdout.flush()
        sys.stderr.flush()
        forget = _own_module_names()
        try:
            pid = os.fork()
        except OSError as err:
            for fd in fds:
                os.close(fd)
            _send(conn, {"error": "fork failed: {}".format(err)})
            conn.close()
            return None
        if pid == 0:
            _child(self.own_fds() + [conn.fileno()], forget, lambda: (request, fds))
        try:
            os.setpgid(pid, pid)  # also done by the child: whichever runs first
        except OSError:
            pass
        return pid

    def hung_up(self, pid):
        """The runner closed the connection of a running child: cancel the run."""
        conn = self.children.get(pid)
        if conn is None:
            return
        try:
            if conn.recv(1):
                return  # the runner sends nothing after the request; ignore stray bytes
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.unwatch(conn.fileno())
        conn.close()
        self.children[pid] = None
        self.kill_group(pid)

    @staticmethod
    def kill_group(pid):
        # The leader is not reaped yet, so its id still names this run's group only.
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass

    def reap(self):
        try:
            while os.read(self.wake_read, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        if self.spare is not None and _exited(self.spare[0]):
            self.release(*self.spare)
            self.spare = None
        for pid in list(self.children):
            if not _exited(pid):
                continue
            # Exited but not reaped: kill what it left in its group, then reap it.
            self.kill_group(pid)
            _, status = os.waitpid(pid, 0)
            conn = self.children.pop(pid)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                _send(conn, {"signal": os.WTERMSIG(status)})
            else:
                _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
            self.unwatch(conn.fileno())
            conn.close()

    def serve(self):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            ready = self.poll.poll(0 if self.want_spare and self.spare is None else -1)
            if not ready:
                self.fork_spare()
                continue
            for fd, _ in ready:
                what = self.watched.get(fd)
                if what is None:
                    continue  # unwatched by an earlier event of this batch
                if what == "accept":
                    self.accept()
                elif what == "child":
                    self.reap()
                elif what == "stdin":
                    try:
                        if os.read(0, 512):
                            continue
                    except InterruptedError:
                        continue
                    except OSError:
                        pass
                    self.shutdown()
                    return
                else:
                    self.hung_up(what)

    def shutdown(self):
        if self.spare is not None:
            self.release(*self.spare)
            self.spare = None
        for pid in list(self.children):
            self.kill_group(pid)
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
