"""No outbound mail is lost when congvu-smtpd is killed with SIGKILL: a full
queue (the remote MX down) survives the kill; killed again in the middle of
delivering it to a real Postfix, then restarted and flushed, every message
reaches the remote (at least once: a kill between the remote's 250 and our
commit may repeat one, never lose one)."""

import os
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outbound_common as oc  # noqa: E402
import smtpd_common as sc  # noqa: E402

D = oc.REMOTE_DOMAIN
SENDER = "demo@" + sc.DOMAIN
N = 40


def subjects(pf):
    out = []
    for m in pf.delivered():
        g = re.search(rb"Subject: (crash-\d+)", m)
        if g:
            out.append(g.group(1).decode())
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="congvu-outbound-crash-")
    os.chmod(tmp, 0o755)
    server = dns = pf = None
    try:
        dns = oc.Dns(tmp, mx=[(D, oc.REMOTE_MX, 10)], hosts=[(oc.REMOTE_MX, oc.REMOTE_IP)])
        pf = oc.Postfix(tmp)
        server = oc.congvu(dns, {"smtpd.outbound_port": str(pf.port),
                                 "smtpd.outbound_destination_concurrency": "2"})
        server.add_account(SENDER)
        server.start()
        c = server.smtp("smtp")
        for i in range(N):
            c.sendmail(SENDER, ["user%d@%s" % (i, D)],
                       sc.message("crash-%d" % i, sender=SENDER, to="user%d@%s" % (i, D)))
        c.quit()

        def all_deferred():
            q = oc.queue_list(server)
            return len(q) == N and all(r[3] == "deferred" for r in q)
        sc.check(oc.wait_for(all_deferred), "%d deferred while the remote is down: %r\n%s"
                 % (N, oc.queue_list(server), server.log()))

        # a flush makes all due in one round: two connections are refused
        # (outbound_destination_concurrency = 2), the others are deferred
        # without trying the dead destination again
        oc.queue_cmd(server, "flush")
        sc.check(oc.wait_for(lambda: server.log().count("event=deferred ") >= 2 * N),
                 "second attempt of every message:\n" + server.log())
        log = server.log()
        tried = log.count("event=outbound_connect ")
        sc.check("destination not tried, unreachable just now" in log,
                 "the dead destination is not tried again in the same round:\n" + log)
        sc.check(tried < 2 * N, "fewer connections than attempts (%d)" % tried)

        server.stop(sig=signal.SIGKILL)
        time.sleep(0.5)
        q = oc.queue_list(server)
        sc.check(len(q) == N, "the queue survives SIGKILL: %d of %d" % (len(q), N))

        # the remote comes back; kill again in the middle of the delivery
        pf.start()
        server.start()
        oc.queue_cmd(server, "flush")
        oc.wait_for(lambda: len(subjects(pf)) >= N // 4, timeout=60, step=0.05)
        server.stop(sig=signal.SIGKILL)
        time.sleep(0.5)
        left = len(oc.queue_list(server))
        got = len(set(subjects(pf)))
        sc.check(left + got >= N, "after the second kill: %d queued + %d delivered < %d"
                 % (left, got, N))

        server.start()
        oc.queue_cmd(server, "flush")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == [], timeout=120),
                 "the queue empties after the restart: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        oc.wait_for(lambda: len(set(subjects(pf))) >= N, timeout=30)
        s = subjects(pf)
        missing = sorted(set("crash-%d" % i for i in range(N)) - set(s))
        sc.check(not missing, "lost: %r" % missing)
        print("outbound crash: ok (%d messages, %d copies delivered)" % (N, len(s)))
    finally:
        oc.teardown(lambda: server and server.cleanup(),
                    lambda: pf and pf.stop(),
                    lambda: dns and dns.stop(),
                    lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == "__main__":
    main()
