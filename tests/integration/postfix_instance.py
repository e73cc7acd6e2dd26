"""A private Postfix instance for the integration tests: its own
config_directory, queue_directory and data_directory in a temporary
directory, smtpd on one loopback address and high port, no chroot, its log
in DIR/maillog. Python standard library only.

    pf = PostfixInstance(directory, "127.0.0.1", port)
    pf.configure(main_cf_text, master_cf("127.0.0.1", port))
    pf.start()          # raises (or calls fail) when it does not listen
    ...
    pf.stop()           # returns once the master process has gone

Starting one needs root (Postfix drops to the user "postfix")."""

import os
import shutil
import socket
import subprocess
import time

from testnet import wait_port

POSTFIX = (shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin:/sbin")
           or "/usr/sbin/postfix")

# The daemons a private instance uses, none chrooted. Unused ones cost
# nothing: master starts a service on its first use.
DAEMONS = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def master_cf(host, port):
    """master.cf text: smtpd on host:port and DAEMONS."""
    return "%s:%d inet n - n - - smtpd\n" % (host, port) + DAEMONS


def system_master_cf(host, port):
    """master.cf text from the system's /etc/postfix/master.cf (every
    service Debian defines, e.g. virtual and local), without chroot and
    without its public SMTP listeners, plus smtpd on host:port."""
    with open("/etc/postfix/master.cf") as f:
        master = f.read().splitlines()
    out = []
    for line in master:
        fields = line.split()
        if not line or line[0] in " \t#" or len(fields) < 8:
            out.append(line)
            continue
        if fields[0] in ("smtp", "submission", "smtps") and fields[1] == "inet":
            continue
        fields[4] = "n"  # no chroot: the queue is ours
        out.append(" ".join(fields))
    out.append("%s:%d inet n - n - - smtpd" % (host, port))
    return "\n".join(out) + "\n"


def _raise(msg):
    raise RuntimeError(msg)


class PostfixInstance:
    """Postfix with config_directory DIR/etc, queue_directory DIR/queue,
    data_directory DIR/pfdata (owned by postfix) and maillog_file
    DIR/maillog; the main.cf given to configure() should use self.queue,
    self.data and self.maillog_path. fail(message) reports a failure to
    start (default: raise RuntimeError)."""

    def __init__(self, directory, host, port, fail=_raise, exe=POSTFIX):
        self.dir = directory
        self.host = host
        self.port = port
        self.fail = fail
        self.exe = exe
        self.conf = os.path.join(directory, "etc")
        self.queue = os.path.join(directory, "queue")
        self.data = os.path.join(directory, "pfdata")
        self.maillog_path = os.path.join(directory, "maillog")
        self.running = False

    def configure(self, main_cf, master):
        for d in (self.conf, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        shutil.chown(self.data, "postfix")
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master)

    def postfix(self, *args):
        """Runs postfix -c CONF args; the CompletedProcess (text)."""
        return subprocess.run([self.exe, "-c", self.conf] + list(args), capture_output=True,
                              text=True, timeout=60)

    def maillog(self):
        try:
            with open(self.maillog_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self, timeout=30.0):
        r = self.postfix("start")
        if r.returncode != 0:
            self.fail("postfix start: %s%s%s" % (r.stdout, r.stderr, self.maillog()))
            return
        self.running = True
        if not wait_port(self.host, self.port, timeout):
            self.stop()
            self.fail("postfix does not listen:\n" + self.maillog())

    def _master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout=30.0):
        """postfix stop, then waits (bounded) for the master process to exit
        and for the listener to close: "postfix stop" returns before."""
        if not self.running:
            return
        pid = self._master_pid()
        self.postfix("stop")
        self.running = False
        end = time.time() + timeout
        while pid is not None and time.time() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            time.sleep(0.1)
        while time.time() < end:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                time.sleep(0.2)
            except OSError:
                break
