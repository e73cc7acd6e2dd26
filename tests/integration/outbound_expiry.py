"""Expiry: mail that cannot be delivered within smtpd.queue_lifetime (1m
here, the shortest allowed) bounces to its local sender with an RFC 3464
report (Action: failed, Status: 4.4.7, the last error), and leaves the
queue. The remote MX never answers (nothing listens on its port). Takes a
little over a minute."""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outbound_common as oc  # noqa: E402
import smtpd_common as sc  # noqa: E402

D = oc.REMOTE_DOMAIN
SENDER = "demo@" + sc.DOMAIN


def main():
    tmp = tempfile.mkdtemp(prefix="congvu-outbound-expiry-")
    os.chmod(tmp, 0o755)
    server = dns = None
    try:
        dns = oc.Dns(tmp, mx=[(D, oc.REMOTE_MX, 10)], hosts=[(oc.REMOTE_MX, oc.REMOTE_IP)])
        dead_port = oc.free_port_on(oc.REMOTE_IP)
        server = oc.congvu(dns, {"smtpd.outbound_port": str(dead_port),
                                 "smtpd.queue_lifetime": "1m",
                                 "smtpd.delay_warning": "0"})
        server.add_account(SENDER)
        server.start()
        t0 = time.time()
        oc.send(server, SENDER, ["alice@" + D], "too late")

        def deferred():
            q = oc.queue_list(server)
            return q if q and q[0][3] == "deferred" else None
        sc.check(oc.wait_for(deferred) is not None, "deferred first:\n" + server.log())
        # the next attempt is scheduled at the deadline, not an hour later
        q = oc.queue_list(server)[0]
        sc.check(q[4] != "", "a next attempt is shown: %r" % q)
        time.sleep(max(0.0, 61.5 - (time.time() - t0)))
        oc.queue_cmd(server, "flush")

        def bounced():
            return [m for m in server.messages(SENDER) if b"Action: failed" in m["data"]]
        b = oc.wait_for(bounced, timeout=60)
        sc.check(b and len(b) == 1, "one bounce on expiry:\n" + server.log())
        data = b[0]["data"]
        for needle in (b"Status: 4.4.7", b"Final-Recipient: rfc822; alice@" + D.encode(),
                       b"delivery time expired", b"Connection refused", b"Subject: too late",
                       b"report-type=delivery-status"):
            sc.check(needle in data, "expiry bounce has %r:\n%s" % (needle, data[:3000]))
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "the queue is empty")
        sc.check(not [m for m in server.messages(SENDER) if b"Action: delayed" in m["data"]],
                 "no delay notice with delay_warning = 0")
        print("outbound expiry: ok")
    finally:
        oc.teardown(lambda: server and server.cleanup(),
                    lambda: dns and dns.stop(),
                    lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == "__main__":
    main()
