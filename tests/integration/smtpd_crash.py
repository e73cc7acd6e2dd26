"""The crash test: sustained ingest from several concurrent clients while
congvu-smtpd is killed with SIGKILL (the whole daemon, or the delivery
process alone) and restarted, several times, and finally stopped with
SIGTERM while the clients still send (exit 0). Afterwards every message
that got a 250 is in the store exactly once, and no message is there
twice."""

import os
import random
import signal
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import DOMAIN, Server, check  # noqa: E402

DEMO = "demo@" + DOMAIN
OTHER = "other@" + DOMAIN
CLIENTS = 8
ROUNDS = 5


class Ingest(threading.Thread):
    def __init__(self, srv, n):
        super().__init__(daemon=True)
        self.srv = srv
        self.n = n
        self.acked = []
        self.sent = 0
        self.stop = False

    def run(self):
        seq = 0
        while not self.stop:
            try:
                c = smtplib.SMTP("127.0.0.1", self.srv.ports["smtp"], timeout=10)
                c.ehlo("crash.test")
                while not self.stop:
                    seq += 1
                    tag = "crash-%d-%d" % (self.n, seq)
                    rcpts = [DEMO, OTHER] if seq % 3 == 0 else [DEMO]
                    msg = ("Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s\r\n"
                           % (tag, tag, ("line of text %d\r\n" % seq) * (seq % 50)))
                    self.sent += 1
                    c.sendmail("sender@example.org", rcpts, msg)
                    self.acked.append((tag, rcpts))
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the daemon is down: try again


def daemon_pids(srv):
    """Every process whose command line names our configuration."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                if srv.conf.encode() in f.read():
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def delivery_pid(srv):
    for line in srv.log().splitlines()[::-1]:
        if "event=started process=delivery" in line:
            return int(line.split("congvu-smtpd[")[1].split("]")[0])
    return None


def main():
    srv = Server(services=("smtp",), settings={"smtpd.workers": "2"})
    try:
        srv.add_account(DEMO)
        srv.add_account(OTHER)
        srv.start()
        clients = [Ingest(srv, i) for i in range(CLIENTS)]
        for c in clients:
            c.start()
        rng = random.Random(42)
        for rnd in range(ROUNDS):
            time.sleep(0.5 + rng.random())
            if rnd % 2 == 0:
                srv.proc.send_signal(signal.SIGKILL)
                srv.proc.wait()
            else:
                pid = delivery_pid(srv)
                check(pid is not None, "no delivery process in the log")
                os.kill(pid, signal.SIGKILL)
                srv.proc.wait(30)  # the parent gives up when a child dies
            end = time.time() + 30
            while daemon_pids(srv) and time.time() < end:
                time.sleep(0.05)
            check(not daemon_pids(srv), "children survived their parent")
            srv.proc = None
            srv.logf.close()
            srv.start()
        time.sleep(1)
        # SIGTERM in the middle of the ingest: a clean exit 0
        check(srv.stop() == 0, "SIGTERM during ingest: not a clean exit")
        for c in clients:
            c.stop = True
        for c in clients:
            c.join(30)
        acked = [a for c in clients for a in c.acked]
        sent = sum(c.sent for c in clients)
        check(len(acked) > 50, "too little was acknowledged to test anything: %d" % len(acked))
        for addr in (DEMO, OTHER):
            counts = {}
            for m in srv.messages(addr):
                for line in m["data"].split(b"\r\n"):
                    if line.startswith(b"Subject: crash-"):
                        tag = line[9:].decode()
                        counts[tag] = counts.get(tag, 0) + 1
            dup = [t for t, n in counts.items() if n > 1]
            check(not dup, "%s: stored more than once: %r" % (addr, dup[:5]))
            missing = [t for t, r in acked if addr in r and counts.get(t, 0) != 1]
            check(not missing, "%s: acknowledged but missing: %r" % (addr, missing[:5]))
        print("ok: %d messages acknowledged of %d sent, %d kills" % (len(acked), sent, ROUNDS))
    except Exception:
        print(srv.log()[-3000:], file=sys.stderr)
        raise
    finally:
        for pid in daemon_pids(srv):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        srv.cleanup()


if __name__ == "__main__":
    main()
