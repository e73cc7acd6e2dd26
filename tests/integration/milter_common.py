"""Helpers of the congvu-milter-spam integration tests: the binary, a
temporary directory, starting the milter and the local DNS server (dnsmasq),
and skipping (exit 77) only when a tool is missing outside CI."""
import base64
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testnet  # noqa: E402

BUILD = os.environ.get("top_builddir", os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
MILTER = os.path.abspath(os.path.join(BUILD, "milter-spam", "congvu-milter-spam"))
LUA_DIR = os.path.abspath(os.path.join(SRC, "tests", "integration", "milter"))


def need(tool, package):
    """The path of tool, or exit 77 (skip) when it is not installed; in CI,
    where quickstart installs everything, a missing tool is a failure."""
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin", "/usr/bin"]:
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    msg = "%s not found (Debian package %s)" % (tool, package)
    if os.environ.get("CI"):
        sys.exit("FAIL: " + msg)
    print("SKIP: " + msg)
    sys.exit(77)


free_port = testnet.free_port


def wait_port(port, proc, what, timeout=30):
    if not testnet.wait_port("127.0.0.1", port, timeout, proc):
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        raise RuntimeError("%s did not listen on port %d" % (what, port))


class TempDir:
    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.path, 0o755)

    def file(self, name, text):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Milter:
    """congvu-milter-spam on inet:PORT@127.0.0.1 with a data_dir of its own."""

    def __init__(self, tmp, *overrides):
        self.port = free_port()
        self.spec = "inet:%d@127.0.0.1" % self.port
        self.conf = tmp.file("congvu.conf", "[global]\ndata_dir = %s/data\n" % tmp.path)
        self.log = open(os.path.join(tmp.path, "milter.log"), "w+")
        self.args = ["-c", self.conf, "-o", "milter-spam.listen=" + self.spec]
        for o in overrides:
            self.args += ["-o", o]
        self.proc = subprocess.Popen([MILTER] + self.args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "congvu-milter-spam")

    def run(self, *args, stdin=None):
        """An offline command with the same configuration."""
        return subprocess.run([MILTER] + self.args + list(args), input=stdin, capture_output=True,
                              timeout=120)

    def stop(self):
        """SIGTERM: the milter must exit 0. Returns its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("congvu-milter-spam ignored SIGTERM")
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        if self.proc.returncode != 0:
            raise RuntimeError("congvu-milter-spam exited %s:\n%s" % (self.proc.returncode, text))
        return text


class Dnsmasq(testnet.Dnsmasq):
    """dnsmasq on 127.0.0.1:PORT answering only from its command line:
    records is a list of (name, txt) pairs; zones are answered locally
    (NXDOMAIN for everything else in them)."""

    def __init__(self, tmp, zones, records, a_records=()):
        super().__init__(need("dnsmasq", "dnsmasq-base"), tmp.path, zones=zones, txt=records,
                         hosts=a_records)


def zip_with(name, data=b"hi"):
    """A stored zip archive holding one file, as base64 on one line."""
    nb = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 10, 0, 0, 0, 0, 0, len(data), len(data),
                        len(nb), 0) + nb + data
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 10, 0, 0, 0, 0, 0, len(data),
                          len(data), len(nb), 0, 0, 0, 0, 0, 0) + nb
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    return base64.b64encode(local + central + end).decode()


def miltertest(script, sock, defines=()):
    """Runs one miltertest script; returns (exit code, output)."""
    exe = need("miltertest", "miltertest")
    args = [exe, "-D", "sock=" + sock, "-D", "dir=" + LUA_DIR]
    for k, v in defines:
        args += ["-D", "%s=%s" % (k, v)]
    args += ["-s", os.path.join(LUA_DIR, script)]
    p = subprocess.run(args, capture_output=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")
