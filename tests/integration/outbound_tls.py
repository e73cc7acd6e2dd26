"""Outbound TLS policy against a real Postfix as the remote MX:
 1. smtpd.tls_policy = *.gov.vn:encrypt and a remote without STARTTLS: the
    mail stays queued (deferred, the reason in `queue list` and the log),
    and the remote never sees a MAIL command;
 1b. the mail older than smtpd.delay_warning (1s here) at the next attempt:
    one delay notice (RFC 3464, Action: delayed) in the sender's INBOX;
 2. the same remote with STARTTLS and a certificate for its MX name, policy
    verify: refused while the certificate's CA is unknown (stays queued),
    delivered once smtpd.outbound_ca_file names it (applied by SIGHUP)."""

import os
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


def deferred_with(server, text):
    def pred():
        q = oc.queue_list(server)
        return q if q and q[0][3] == "deferred" and text in q[0][5] else None
    return oc.wait_for(pred)


def main():
    tmp = tempfile.mkdtemp(prefix="congvu-outbound-tls-")
    os.chmod(tmp, 0o755)
    server = dns = pf = None
    try:
        dns = oc.Dns(tmp, mx=[(D, oc.REMOTE_MX, 10)], hosts=[(oc.REMOTE_MX, oc.REMOTE_IP)])

        # 1. encrypt, remote without STARTTLS
        os.makedirs(os.path.join(tmp, "a"))
        pf = oc.Postfix(os.path.join(tmp, "a"), starttls=False)
        pf.start()
        server = oc.congvu(dns, {"smtpd.outbound_port": str(pf.port),
                                 "smtpd.tls_policy": "*.gov.vn:encrypt",
                                 "smtpd.delay_warning": "1s"})
        server.add_account(SENDER)
        server.start()
        oc.send(server, SENDER, ["alice@" + D], "secret plan")
        q = deferred_with(server, "TLS required")
        sc.check(q is not None, "stays queued with the TLS reason: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check("STARTTLS not offered" in q[0][5], "reason: %r" % q[0])
        log = server.log()
        sc.check("event=tls_policy" in log and "policy=encrypt" in log, "policy logged:\n" + log)
        sc.check("status=deferred dsn=4.7.4" in log, "deferral logged (4.7.4):\n" + log)
        time.sleep(0.5)
        sc.check(pf.delivered() == [], "nothing delivered in clear")
        sc.check("mail=" not in pf.log(), "no MAIL command reached the remote:\n" + pf.log())
        # 1b. flushing changes nothing while the remote offers no TLS, but
        # the second attempt, past delay_warning, tells the sender once
        time.sleep(1.2)

        def delayed():
            return [m for m in server.messages(SENDER) if b"Action: delayed" in m["data"]]
        for _ in range(2):
            oc.queue_cmd(server, "flush")
            sc.check(oc.wait_for(delayed, timeout=30), "a delay notice:\n" + server.log())
        time.sleep(1.0)
        sc.check(len(oc.queue_list(server)) == 1 and pf.delivered() == [], "still queued")
        notes = delayed()
        sc.check(len(notes) == 1, "exactly one delay notice, got %d" % len(notes))
        data = notes[0]["data"]
        for needle in (b"report-type=delivery-status", b"Final-Recipient: rfc822; alice@" +
                       D.encode(), b"Status: 4.7.4", b"Will-Retry-Until: ",
                       b"Content-Type: text/rfc822-headers", b"Subject: secret plan",
                       b"TLS required"):
            sc.check(needle in data, "delay notice has %r:\n%s" % (needle, data[:3000]))
        sc.check(b"Hello from Lam Dong" not in data, "a delay notice returns the header only")
        server.cleanup()
        server = None
        pf.stop()

        # 2. verify: unknown CA, then the CA configured
        os.makedirs(os.path.join(tmp, "b"))
        pf = oc.Postfix(os.path.join(tmp, "b"), starttls=True, cert_name=oc.REMOTE_MX)
        pf.start()
        server = oc.congvu(dns, {"smtpd.outbound_port": str(pf.port),
                                 "smtpd.tls_policy": "*.gov.vn:verify"})
        server.add_account(SENDER)
        server.start()
        oc.send(server, SENDER, ["bob@" + D], "verified plan")
        q = deferred_with(server, "verif")
        sc.check(q is not None, "unverified certificate: stays queued: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check(pf.delivered() == [], "nothing delivered to an unverified server")
        # the CA configured and SIGHUP: the running outbound process reloads
        server.settings["smtpd.outbound_ca_file"] = pf.cert
        server.write_config()
        server.proc.send_signal(signal.SIGHUP)
        sc.check(oc.wait_for(lambda: "event=reloaded process=outbound" in server.log()),
                 "the outbound process reloads on SIGHUP:\n" + server.log())
        oc.queue_cmd(server, "flush")
        got = pf.wait_delivered(1)
        sc.check(len(got) == 1 and b"Subject: verified plan" in got[0],
                 "delivered once the CA is known:\n" + server.log())
        sc.check("verified=yes" in server.log(), "verification logged")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty")
        print("outbound tls policy: ok")
    finally:
        oc.teardown(lambda: server and server.cleanup(),
                    lambda: pf and pf.stop(),
                    lambda: dns and dns.stop(),
                    lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == "__main__":
    main()
