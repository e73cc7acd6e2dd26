#!/usr/bin/env python3
"""bench/outbound: messages per second relayed to a remote server, for
congvu-smtpd beside Postfix, with the same load in the same run.

The load: smtp-source (Debian package postfix) submits N messages of 10 KB
for a remote domain from 127.0.0.1 (a trusted network, so relaying is
allowed) over S sessions. The relay under test sends them on to the same
sink, Postfix's smtp-sink on 127.0.0.2, which writes one file per received
transaction; the clock stops when the sink holds N files.
- congvu-smtpd: smtpd.relay_host = the sink; its 250 means the message is
  durable in the store's queue, and the outbound process relays it with up
  to smtpd.outbound_destination_concurrency (set to 20) connections;
- Postfix: relayhost = the sink, default_destination_concurrency_limit 20
  (its default), private config and queue directories.
Both speak plain SMTP to the sink (smtp-sink offers no STARTTLS).

Usage: bench/outbound.py [--messages N] [--sessions S] [--quick]
Run from the build directory (top_builddir) or set top_builddir. Needs root
(smtp-sink and Postfix drop to their users)."""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from postfix_instance import PostfixInstance, system_master_cf  # noqa: E402
from testnet import free_port, wait_port  # noqa: E402

BUILD = os.path.abspath(os.environ.get("top_builddir", "."))
SMTPD = os.path.join(BUILD, "smtpd", "congvu-smtpd")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SINK_IP = "127.0.0.2"
REMOTE = "quangninh.gov.vn"


class Sink:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sink")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)
        self.port = free_port(SINK_IP)
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "-h", "mx." + REMOTE, "-d",
             os.path.join(self.dir, "%H%M%S."), "-m", "512", "%s:%d" % (SINK_IP, self.port),
             "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(SINK_IP, self.port, 30):
            sys.exit("smtp-sink did not start")

    def count(self):
        return len(os.listdir(self.dir))

    def clear(self):
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def load(port, sessions, messages):
    subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", "10240",
                    "-f", "bench@lamdong.gov.vn", "-t", "user@" + REMOTE, "-M", "bench.test",
                    "127.0.0.1:%d" % port], check=True, timeout=3600)


def measure(sink, port, sessions, messages):
    sink.clear()
    t0 = time.time()
    load(port, sessions, messages)
    t_in = time.time() - t0
    end = time.time() + 600
    while sink.count() < messages and time.time() < end:
        time.sleep(0.02)
    t_out = time.time() - t0
    return sink.count(), t_in, t_out


class Congvu:
    def __init__(self, tmp, sink):
        self.dir = os.path.join(tmp, "congvu")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "congvu.conf")
        with open(self.conf, "w") as f:
            f.write("[global]\nhostname = mail.lamdong.gov.vn\ndomains = lamdong.gov.vn\n"
                    "data_dir = %s\nuser = nobody\n" % os.path.join(self.dir, "data"))
            f.write("[smtpd]\nsmtp_listen = 127.0.0.1:%d\nsubmission_listen =\n"
                    "smtps_listen =\nlmtp_listen =\nworkers = 2\n"
                    "relay_host = %s:%d\noutbound_destination_concurrency = 20\n"
                    % (self.port, SINK_IP, sink.port))
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([SMTPD, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not wait_port("127.0.0.1", self.port, 30):
            sys.exit("congvu-smtpd did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


class Postfix:
    def __init__(self, tmp, sink):
        self.dir = os.path.join(tmp, "postfix")
        self.port = free_port()
        self.instance = PostfixInstance(self.dir, "127.0.0.1", self.port, fail=sys.exit)
        self.conf = self.instance.conf
        lines = [
            "compatibility_level = 3.6",
            "queue_directory = " + self.instance.queue,
            "data_directory = " + self.instance.data,
            "meta_directory = /etc/postfix",
            "mail_owner = postfix",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "myhostname = relay.lamdong.gov.vn",
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            "relayhost = [%s]:%d" % (SINK_IP, sink.port),
            "maillog_file = " + self.instance.maillog_path,
            "maillog_file_prefixes = " + self.dir,
            "alias_maps =",
            "alias_database =",
            "smtp_tls_security_level = none",
            "smtpd_tls_security_level = none",
        ]
        self.instance.configure("\n".join(lines) + "\n",
                                system_master_cf("127.0.0.1", self.port))
        self.instance.start()

    def stop(self):
        self.instance.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.messages = 300
    if os.geteuid() != 0:
        sys.exit("bench/outbound needs root (Postfix, smtp-sink)")
    pwd.getpwnam("postfix")
    tmp = tempfile.mkdtemp(prefix="congvu-bench-outbound-")
    os.chmod(tmp, 0o755)
    sink = congvu = postfix = None
    rows = []
    try:
        sink = Sink(tmp)
        congvu = Congvu(tmp, sink)
        rows.append(("congvu-smtpd",) + measure(sink, congvu.port, a.sessions, a.messages))
        congvu.stop()
        congvu = None
        postfix = Postfix(tmp, sink)
        rows.append(("Postfix 3.7",) + measure(sink, postfix.port, a.sessions, a.messages))
    finally:
        if congvu is not None:
            congvu.stop()
        if postfix is not None:
            postfix.stop()
        if sink is not None:
            sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("bench/outbound: %d messages of 10 KB, %d submitting sessions, relayed to smtp-sink"
          % (a.messages, a.sessions))
    print("%-14s %10s %14s %12s %14s" % ("relay", "relayed", "accepted/s", "relayed/s",
                                         "total seconds"))
    for name, n, t_in, t_out in rows:
        print("%-14s %10d %14.0f %12.0f %14.2f" % (name, n, a.messages / t_in, n / t_out, t_out))


if __name__ == "__main__":
    main()
