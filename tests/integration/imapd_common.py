"""Shared set-up for the congvu-imapd integration tests: a temporary data
directory with an account, a self-signed certificate, free loopback ports,
and the daemon started and stopped. Python standard library only."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testnet  # noqa: E402

BUILD = os.environ.get("top_builddir", os.getcwd())
SRC = os.environ.get("top_srcdir", os.getcwd())
IMAPD = os.path.join(BUILD, "imapd", "congvu-imapd")
QUOTA = os.path.join(BUILD, "quota", "congvu-quota")

USER = "demo@lamdong.gov.vn"
PASSWORD = "mat-khau-demo"


free_port = testnet.free_port


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


class Server:
    """congvu-imapd on 127.0.0.1 with STARTTLS and implicit TLS ports."""

    def __init__(self, trusted="127.0.0.0/8", extra=(), accounts=((USER, PASSWORD, None),),
                 data_dir=None):
        self.dir = tempfile.mkdtemp(prefix="congvu-imapd-test-")
        self.data = data_dir or os.path.join(self.dir, "data")
        if data_dir is None:
            os.mkdir(self.data)
        else:
            accounts = ()
        with open(os.path.join(self.dir, "none.conf"), "w") as f:
            f.write("# empty: built-in defaults and -o options\n")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2", "-keyout", self.key,
                        "-out", self.cert], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        for (addr, pw, quota) in accounts:
            self.add_account(addr, pw, quota)
        self.port = free_port()
        self.tls_port = free_port()
        self.log_path = os.path.join(self.dir, "imapd.log")
        self.log = open(self.log_path, "w")
        args = [IMAPD] + self.options() + [
            "-o", "imapd.imap_listen=127.0.0.1:%d" % self.port,
            "-o", "imapd.imaps_listen=127.0.0.1:%d" % self.tls_port,
            "-o", "imapd.trusted_networks=%s" % trusted,
            "-o", "imapd.workers=2",
            "-o", "imapd.auth_fail_delay=0",
        ]
        for e in extra:
            args += ["-o", e]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_port(self.port)
        self.wait_port(self.tls_port)

    def options(self):
        return ["-c", os.path.join(self.dir, "none.conf"),
                "-o", "global.data_dir=" + self.data,
                "-o", "tls.cert=" + self.cert, "-o", "tls.key=" + self.key,
                "-o", "global.store_map_size=64M",
                # started as root, the workers run as nobody: on SIGHUP the
                # master reads the (root-only) files and hands them over
                "-o", "global.user=nobody"]

    def add_account(self, addr, pw, quota=None):
        cmd = [QUOTA, "-c", os.path.join(self.dir, "none.conf"), "-o",
               "global.data_dir=" + self.data, "account", "add", addr]
        if quota:
            cmd += ["--quota", quota]
        subprocess.run(cmd, input=pw + "\n", text=True, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)

    def wait_port(self, port):
        if testnet.wait_port("127.0.0.1", port, 20, self.proc):
            return
        if self.proc.poll() is not None:
            self.dump_log()
            fail("congvu-imapd exited with %s" % self.proc.returncode)
        fail("port %d did not open" % port)

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        return ctx

    def dump_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            sys.stdout.write(f.read()[-6000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.dump_log()
                fail("congvu-imapd did not stop on SIGTERM")
            if rc != 0:
                self.dump_log()
                fail("congvu-imapd exited %d after SIGTERM" % rc)
        self.log.close()
        with open(self.log_path, errors="replace") as f:
            log = f.read()
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log:
            print(log[-4000:], file=sys.stderr)
            fail("sanitizer report in the daemon's log")
        shutil.rmtree(self.dir, ignore_errors=True)


class Raw:
    """A line-level IMAP client for scripted conversations and abuse."""

    def __init__(self, port, tls_ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; buffered %r" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def until_tagged(self, tag):
        """Lines up to and including the tagged reply."""
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag + " "):
                return lines

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until_tagged(tag)

    def closed(self):
        try:
            self.sock.settimeout(10)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
