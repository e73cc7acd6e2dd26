"""Shared helpers of the congvu-smtpd integration tests: a temporary
configuration, certificate and store, the daemon on free loopback ports,
accounts made with congvu-quota, and the stored messages read back with
the store-peek test tool. Python standard library only."""

import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import testnet
from testnet import free_port  # noqa: F401 (the tests import it from here)

BUILD = os.path.abspath(os.environ.get("top_builddir", "."))
SRC = os.path.abspath(os.environ.get("top_srcdir", "."))
SMTPD = os.path.join(BUILD, "smtpd", "congvu-smtpd")
QUOTA = os.path.join(BUILD, "quota", "congvu-quota")
PEEK = os.path.join(BUILD, "smtpd", "store-peek")
DOMAIN = "lamdong.gov.vn"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait_port(port, timeout=15.0):
    return testnet.wait_port("127.0.0.1", port, timeout)


def make_cert(directory, name="cert"):
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def unprivileged_user():
    """The user the children run as when the tests run as root."""
    return "nobody"


class Server:
    def __init__(self, settings=None, services=("smtp", "submission", "smtps", "lmtp")):
        self.dir = tempfile.mkdtemp(prefix="congvu-smtpd-test-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.cert, self.key = make_cert(self.dir)
        self.ports = {s: free_port() for s in services}
        self.conf = os.path.join(self.dir, "congvu.conf")
        self.logpath = os.path.join(self.dir, "smtpd.log")
        self.proc = None
        self.settings = {
            "global.hostname": "mx.test",
            "global.domains": DOMAIN,
            "global.data_dir": self.data,
            "global.user": unprivileged_user(),
            "tls.cert": self.cert,
            "tls.key": self.key,
            "smtpd.smtp_listen": "",
            "smtpd.submission_listen": "",
            "smtpd.smtps_listen": "",
            "smtpd.lmtp_listen": "",
            "smtpd.workers": "2",
            "smtpd.auth_failure_delay": "0",
            # outbound mail goes nowhere: a closed local port (it stays queued)
            "smtpd.relay_host": "127.0.0.1:%d" % free_port(),
        }
        for s in services:
            self.settings["smtpd.%s_listen" % s] = "127.0.0.1:%d" % self.ports[s]
        if settings:
            self.settings.update(settings)
        self.write_config()

    def write_config(self):
        sections = {}
        for k, v in self.settings.items():
            sec, key = k.split(".", 1)
            sections.setdefault(sec, []).append("%s = %s" % (key, v))
        with open(self.conf, "w") as f:
            for sec, lines in sections.items():
                f.write("[%s]\n%s\n" % (sec, "\n".join(lines)))

    def quota(self, *args, stdin=None):
        return subprocess.run([QUOTA, "-c", self.conf] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=60)

    def add_account(self, address, password="secret", quota=None):
        args = ["account", "add", address]
        if quota is not None:
            args += ["--quota", quota]
        r = self.quota(*args, stdin=password + "\n")
        check(r.returncode == 0, "congvu-quota account add: " + r.stderr)

    def start(self, wait=True):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([SMTPD, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        if wait:
            for port in self.ports.values():
                if not wait_port(port):
                    self.stop()
                    fail("congvu-smtpd did not start:\n" + self.log())
            # the ports are bound before the children run: wait for them
            workers = int(self.settings.get("smtpd.workers", "0") or 0)
            if not self.wait_log("event=started process=worker", max(workers, 1)):
                self.stop()
                fail("congvu-smtpd workers did not start:\n" + self.log())
        return self.proc

    def wait_log(self, text, count=1, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.log().count(text) >= count:
                return True
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("congvu-smtpd did not stop on signal %d" % sig)
        rc = self.proc.returncode
        self.proc = None
        self.logf.close()
        log = self.log()
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log:
            fail("sanitizer report in the daemon's log:\n" + log[-4000:])
        return rc

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def messages(self, address):
        r = subprocess.run([PEEK, self.data, address], capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0, "store-peek: " + r.stderr)
        out = []
        for line in r.stdout.splitlines():
            m = json.loads(line)
            m["data"] = m["data"].encode("latin-1")
            out.append(m)
        return out

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def smtp(self, service="smtp", starttls=False, login=None):
        if service == "smtps":
            c = smtplib.SMTP_SSL("127.0.0.1", self.ports["smtps"], timeout=20,
                                 context=self.tls_context())
        else:
            c = smtplib.SMTP("127.0.0.1", self.ports[service], timeout=20)
        c.ehlo("client.test")
        if starttls:
            c.starttls(context=self.tls_context())
            c.ehlo("client.test")
        if login:
            c.login(*login)
        return c

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def raw_session(port, lines, read_until_close=False, timeout=10):
    """Sends raw bytes (a list of byte strings sent one by one, with the
    replies read in between) and returns all reply bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    out += read_reply(s)
    for chunk in lines:
        s.sendall(chunk)
        out += read_reply(s)
    if read_until_close:
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except OSError:
            pass
    s.close()
    return out


def read_reply(s):
    """Reads one complete (possibly multi-line) SMTP reply, or what comes
    before the peer closes."""
    buf = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            return buf
        if not d:
            return buf
        buf += d
        lines = buf.split(b"\r\n")
        complete = lines[:-1]
        if complete and len(complete[-1]) >= 4 and complete[-1][3:4] == b" ":
            return buf


def message(subject, body="Hello.\r\n", sender="sender@example.org", to="demo@" + DOMAIN,
            extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n%s\r\n%s"
            % (sender, to, subject, subject.replace(" ", "."), extra, body))
