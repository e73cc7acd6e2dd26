#!/usr/bin/env python3
"""bench/smtp: messages per second of congvu-smtpd against the usual stack,
Postfix delivering to Dovecot over LMTP, in the same run, both driven by
the same load generator, bench/smtp-load (one connection per session
carrying message after message, MAIL/RCPT/DATA pipelined when offered,
every reply code checked).

For each case (10 KB messages; 1 and 20 recipients; 1, 10 and 50
concurrent sessions) it sends the same number of messages to
- congvu-smtpd: a 250 means the message is durable in the store, so the
  rate is the rate of durable delivery; afterwards the store must hold
  every message (congvu-quota report);
- Postfix (its queue is durable at 250) relaying to Dovecot LMTP (maildir):
  the rate counts until every message is in a maildir.
Beside the rates it prints the latency of a message (MAIL to the final
250) and, for congvu-smtpd, the CPU time per message of its processes
and of the generator.

Usage: bench/smtp.py [--messages N] [--quick] [--only congvu|postfix]
                     [--sessions N --rcpts N] [--compression zstd|none]
Run from the build directory (top_builddir) or set top_builddir. Needs
root (Postfix and Dovecot are started privately on loopback ports)."""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(os.environ.get("top_builddir", "."))
SMTPD = os.path.join(BUILD, "smtpd", "congvu-smtpd")
QUOTA = os.path.join(BUILD, "quota", "congvu-quota")
PEEK = os.path.join(BUILD, "smtpd", "store-peek")
LOAD = os.path.join(BUILD, "bench", "smtp-load")
DOMAIN = "lamdong.gov.vn"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import testnet  # noqa: E402
from testnet import free_port  # noqa: E402
from postfix_instance import master_cf  # noqa: E402


def wait_port(port, timeout=30):
    return testnet.wait_port("127.0.0.1", port, timeout)


def users(n):
    # smtp-source -r N sends to "1demo@...", "2demo@..." ... "Ndemo@..."
    return ["demo@" + DOMAIN] + ["%ddemo@%s" % (i, DOMAIN) for i in range(1, n + 1)]


def smtp_load(port, sessions, messages, rcpts):
    """Runs bench/smtp-load; returns its figures (a dict of floats) and the
    CPU seconds it used."""
    args = [LOAD, "-s", str(sessions), "-m", str(messages), "-l", "10240",
            "-f", "bench@example.org", "-t", "demo@" + DOMAIN, "-r", str(rcpts),
            "127.0.0.1:%d" % port]
    before = os.times()
    r = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    after = os.times()
    if r.returncode != 0:
        sys.exit("smtp-load failed: %s%s" % (r.stdout, r.stderr))
    res = {k: float(v) for k, v in (f.split("=") for f in r.stdout.split())}
    cpu = (after.children_user - before.children_user +
           after.children_system - before.children_system)
    return res, cpu


def proc_cpu(pids):
    """CPU seconds (user + system) used so far by these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Congvu:
    def __init__(self, tmp, nusers, compression="zstd"):
        self.dir = os.path.join(tmp, "congvu")
        os.makedirs(self.dir)
        os.chmod(tmp, 0o755)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "congvu.conf")
        with open(self.conf, "w") as f:
            f.write("[global]\nhostname = mx.bench\ndomains = %s\ndata_dir = %s/data\n"
                    "user = nobody\nstore_map_size = 4G\nstore_compression = %s\n"
                    "[smtpd]\nsmtp_listen = 127.0.0.1:%d\nsubmission_listen =\n"
                    "smtps_listen =\nlmtp_listen =\nmax_sessions_per_ip = 1000\n"
                    % (DOMAIN, self.dir, compression, self.port))
        for u in users(nusers):
            r = subprocess.run([QUOTA, "-c", self.conf, "account", "add", u, "--quota", "0"],
                               input="x\n", capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("congvu-quota: " + r.stderr)
        self.log = open(os.path.join(self.dir, "smtpd.log"), "w")
        self.proc = subprocess.Popen([SMTPD, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not wait_port(self.port):
            sys.exit("congvu-smtpd did not start")

    def stored(self):
        r = subprocess.run([QUOTA, "-c", self.conf, "report", "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("congvu-quota report: " + r.stderr)
        return sum(a["messages"] for a in json.loads(r.stdout))

    def run(self, sessions, messages, rcpts):
        before = self.stored()
        pids = [self.proc.pid] + children(self.proc.pid)
        cpu0 = proc_cpu(pids)
        res, gen_cpu = smtp_load(self.port, sessions, messages, rcpts)
        cpu = proc_cpu(pids) - cpu0
        got = self.stored() - before
        if got != messages * rcpts:
            sys.exit("congvu-smtpd: %d messages in the store, %d expected"
                     % (got, messages * rcpts))
        res["cpu_us"] = cpu * 1e6 / messages
        res["gen_cpu_us"] = gen_cpu * 1e6 / messages
        # Under load the delivery process stores some messages uncompressed
        # (smtpd.compress_backlog) and compresses them once deliveries pause
        # (its compacting thread starts 0.5 to 1.5 s after the last one).
        raw = self.uncompressed()
        res["raw_pct"] = None if raw is None else 100.0 * raw / messages  # one chunk each
        t0 = time.time()
        while raw and time.time() - t0 < 300:
            time.sleep(0.1)
            raw = self.uncompressed()
        res["compact_s"] = time.time() - t0
        return res

    def uncompressed(self):
        """Chunks stored uncompressed (store-peek, built by make check)."""
        if not os.access(PEEK, os.X_OK):
            return None
        r = subprocess.run([PEEK, "--stats", os.path.join(self.dir, "data")],
                           capture_output=True, text=True)
        return json.loads(r.stdout)["uncompressed_chunks"] if r.returncode == 0 else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/pfdata
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = edge.bench
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = {domain}
relay_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
"""

DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:{dir}/mail/%u
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = passwd-file
  args = {dir}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class PostfixDovecot:
    def __init__(self, tmp, nusers):
        self.dir = os.path.join(tmp, "pd")
        for d in ("", "etc", "queue", "pfdata", "run", "state", "mail"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(self.dir, 0o755)
        shutil.chown(os.path.join(self.dir, "pfdata"), "postfix")
        shutil.chown(os.path.join(self.dir, "mail"), "nobody")
        self.lmtp = free_port()
        self.port = free_port()
        nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout
        nogroup = subprocess.run(["id", "-g", "nobody"], capture_output=True, text=True).stdout
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u in users(nusers):
                f.write("%s:{PLAIN}x:%s:%s::%s/mail/%s\n" % (u, nobody.strip(), nogroup.strip(),
                                                           self.dir, u))
        self.dconf = os.path.join(self.dir, "dovecot.conf")
        with open(self.dconf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=self.dir, port=self.lmtp))
        self.dovecot = subprocess.Popen(["dovecot", "-F", "-c", self.dconf],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not wait_port(self.lmtp):
            sys.exit("dovecot did not start")
        self.etc = os.path.join(self.dir, "etc")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=self.dir, domain=DOMAIN, lmtp=self.lmtp))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master_cf("127.0.0.1", self.port))
        r = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True, text=True)
        if r.returncode != 0 or not wait_port(self.port):
            self.dovecot.terminate()
            self.dovecot.wait(30)
            sys.exit("postfix did not start: " + r.stderr + " (see %s/maillog)" % self.dir)
        self.delivered = 0

    def count(self):
        n = 0
        for root, _dirs, files in os.walk(os.path.join(self.dir, "mail")):
            if root.endswith("/new") or root.endswith("/cur"):
                n += len(files)
        return n

    def run(self, sessions, messages, rcpts):
        before = self.count()
        start = time.time()
        res, _cpu = smtp_load(self.port, sessions, messages, rcpts)
        want = before + messages * rcpts
        end = time.time() + 3600
        while self.count() < want and time.time() < end:
            time.sleep(0.01)
        if self.count() < want:
            sys.exit("postfix+dovecot: messages missing from the maildirs")
        res["rate"] = messages / (time.time() - start)
        return res

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
        pid = os.path.join(self.dir, "queue", "pid", "master.pid")
        end = time.time() + 30
        while os.path.exists(pid) and time.time() < end:
            time.sleep(0.2)
        self.dovecot.send_signal(signal.SIGTERM)
        self.dovecot.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000,
                    help="messages per case (default 2000)")
    ap.add_argument("--quick", action="store_true", help="one case only (50 sessions, 1 rcpt)")
    ap.add_argument("--only", choices=("congvu", "postfix"), help="one side only")
    ap.add_argument("--sessions", type=int, help="one case: this many sessions")
    ap.add_argument("--rcpts", type=int, default=1, help="with --sessions: recipients")
    ap.add_argument("--compression", choices=("zstd", "none"), default="zstd",
                    help="congvu's global.store_compression (default zstd, the default)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/smtp.py: run as root (it starts private Postfix and Dovecot instances)")
    for tool in (LOAD, SMTPD, QUOTA):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s (make bench/smtp-load and the daemons first)" % tool)
    cases = [(s, r) for r in (1, 20) for s in (1, 10, 50)]
    if a.quick:
        cases = [(50, 1)]
    if a.sessions:
        cases = [(a.sessions, a.rcpts)]
    tmp = tempfile.mkdtemp(prefix="congvu-bench-smtp-")
    os.chmod(tmp, 0o755)  # Postfix's and Dovecot's users reach their directories
    cv = pd = None
    try:
        if a.only != "postfix":
            cv = Congvu(tmp, 20, a.compression)
        if a.only != "congvu":
            pd = PostfixDovecot(tmp, 20)
        print("10 KB messages, %d per case (200 minimum); messages/s (higher is better),"
              " latency p50/p99 in ms; cpu: microseconds per message of congvu-smtpd's"
              " processes / of the generator;\nraw: share of the messages stored"
              " uncompressed at their 250 (compression yields under load), all compressed"
              " that many seconds after the run" % a.messages)
        print("%-8s %-5s %13s %13s %11s %12s %15s %13s %6s" % (
            "sessions", "rcpts", "congvu-smtpd", "p50/p99", "cpu", "raw", "postfix+dovecot",
            "p50/p99", "ratio"))
        for sessions, rcpts in cases:
            n = a.messages if rcpts == 1 else max(200, a.messages // 10)
            c = cv.run(sessions, n, rcpts) if cv else None
            p = pd.run(sessions, n, rcpts) if pd else None
            col = lambda r, k: ("%.1f/%.1f" % (r["p50_ms"], r["p99_ms"])) if r else "-"
            raw = "-"
            if c and c["raw_pct"] is not None:
                raw = "%.0f%%/%.1fs" % (c["raw_pct"], c["compact_s"])
            print("%-8d %-5d %13s %13s %11s %12s %15s %13s %6s" % (
                sessions, rcpts,
                "%.0f" % c["rate"] if c else "-", col(c, 0),
                "%.0f/%.0f" % (c["cpu_us"], c["gen_cpu_us"]) if c else "-", raw,
                "%.0f" % p["rate"] if p else "-", col(p, 0),
                "%.1fx" % (c["rate"] / p["rate"]) if c and p else "-"), flush=True)
    finally:
        if cv:
            cv.stop()
        if pd:
            pd.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
