"""Outbound delivery end to end with a real Postfix as the remote MX on
127.0.0.2 and dnsmasq serving its MX record:
 1. a message for two remote recipients leaves as one copy with both, over
    STARTTLS, and the queue empties;
 2. a recipient the remote refuses with 550: the other is delivered, the
    sender (a local account) finds an RFC 3464 bounce in its INBOX, and the
    queue empties;
 3. the remote down: the mail stays queued (deferred, with the error); the
    remote up again and `queue flush`: delivered, queue empty;
 4. a bounce is never sent to the null sender;
 5. one message for two domains: one transaction per domain, each with all
    of its recipients;
 6. a bounce for a remote sender is queued from <> and delivered there;
 7. DSN parameters (NOTIFY, ORCPT, RET, ENVID) and SMTPUTF8 reach the remote:
    Postfix answers NOTIFY=SUCCESS with its own success notification, and
    takes a UTF-8 recipient;
 8. a bounce for a local sender whose mailbox is full waits in the queue and
    lands once the quota is raised."""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outbound_common as oc  # noqa: E402
import smtpd_common as sc  # noqa: E402

D = oc.REMOTE_DOMAIN
D2 = "hanoi.gov.vn"
SENDER = "demo@" + sc.DOMAIN


def main():
    server = None
    dns = pf = None
    tmp = tempfile.mkdtemp(prefix="congvu-outbound-")
    os.chmod(tmp, 0o755)
    try:
        dns = oc.Dns(tmp, mx=[(D, oc.REMOTE_MX, 10), (D2, oc.REMOTE_MX, 10)],
                     hosts=[(oc.REMOTE_MX, oc.REMOTE_IP)], zones=(D, D2))
        pf = oc.Postfix(tmp, reject=("nobody@" + D,), domains=(D, D2))
        pf.start()
        server = oc.congvu(dns, {"smtpd.outbound_port": str(pf.port)})
        server.add_account(SENDER)
        server.start()

        # 1. one copy, two recipients, STARTTLS
        oc.send(server, SENDER, ["alice@" + D, "bob@" + D], "first")
        got = pf.wait_delivered(2)
        sc.check(len(got) == 2, "two copies in the remote Maildir (one per recipient), got %d\n%s\n%s"
                 % (len(got), server.log(), pf.log()))
        sc.check(all(b"Subject: first" in m for m in got), "the message arrived")
        log = pf.log()
        sc.check(log.count("from=<%s>" % SENDER) == 1,
                 "one transaction for both recipients:\n" + log)
        sc.check("ehlo=2 starttls=1 mail=1 rcpt=2" in log, "STARTTLS was used:\n" + log)
        sc.check("tls=TLSv1.3" in server.log(), "the TLS version is logged")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty after delivery")
        slog = server.log()
        sc.check("event=outbound " in slog and "status=sent" in slog,
                 "a log line per delivered recipient:\n" + slog)
        qid = [l for l in slog.splitlines() if "status=sent" in l][0].split("queue_id=")[1].split()[0]
        sc.check("event=removed queue_id=%s" % qid in slog, "removal logged by queue id")
        # the message's story by its queue id: accepted, attempted, sent, removed
        story = [l for l in slog.splitlines()
                 if "queued=%s " % qid in l or "queue_id=%s " % qid in l + " "]
        for ev in ("event=delivered", "event=attempt", "event=outbound ", "event=removed"):
            sc.check(any(ev in l for l in story), "%s traced by queue id %s:\n%s"
                     % (ev, qid, "\n".join(story)))

        # 2. 550 for one recipient: a bounce in the sender's INBOX
        oc.send(server, SENDER, ["carol@" + D, "nobody@" + D], "second")
        got = pf.wait_delivered(3)
        sc.check(len(got) == 3, "the accepted recipient got its copy")

        def bounced():
            return [m for m in server.messages(SENDER)
                    if b"multipart/report" in m["data"]]
        b = oc.wait_for(bounced)
        sc.check(len(b) == 1, "one bounce in the sender's INBOX:\n" + server.log())
        data = b[0]["data"]
        for needle in (b"report-type=delivery-status", b"Content-Type: message/delivery-status",
                       b"Final-Recipient: rfc822; nobody@" + D.encode(), b"Action: failed",
                       b"Status: 5.1.1", b"Diagnostic-Code: smtp; 550 5.1.1",
                       b"Remote-MTA: dns; " + oc.REMOTE_MX.encode(), b"Subject: second",
                       b"Auto-Submitted: auto-replied"):
            sc.check(needle in data, "bounce has %r:\n%s" % (needle, data[:3000]))
        sc.check(b"carol@" not in data.split(b"message/delivery-status")[1].split(b"--=_")[0],
                 "the delivered recipient is not in the report")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty after the bounce")

        # 3. the remote down, then up and a flush
        pf.stop()
        oc.send(server, SENDER, ["dave@" + D], "third")

        def deferred():
            q = oc.queue_list(server)
            return q if q and q[0][4 - 1] == "deferred" else None
        q = oc.wait_for(deferred)
        sc.check(q is not None and len(q) == 1, "deferred while the remote is down: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        row = q[0]
        sc.check(row[1] == SENDER and row[2] == "dave@" + D, "queue list fields: %r" % row)
        sc.check("connect to" in row[5] or "refused" in row[5], "last error shown: %r" % row)
        r = oc.queue_cmd(server, "show", row[0])
        sc.check(r.returncode == 0 and "dave@" + D in r.stdout, "queue show: " + r.stdout + r.stderr)
        pf.start()
        time.sleep(0.5)
        sc.check(len(pf.delivered()) == 3, "nothing delivered before the flush")
        r = oc.queue_cmd(server, "flush")
        sc.check(r.returncode == 0, "queue flush: " + r.stderr)
        got = pf.wait_delivered(4)
        sc.check(len(got) == 4 and any(b"Subject: third" in m for m in got),
                 "delivered after the flush:\n" + server.log())
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty after the retry")

        # 4. the null sender gets no bounce: the failure is only logged
        before = len(server.messages(SENDER))
        oc.send(server, "", ["nobody@" + D], "fourth")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "null-sender mail leaves the queue")
        sc.check(len(server.messages(SENDER)) == before, "no bounce for the null sender")
        sc.check("to=<nobody@%s>" % D in server.log() and "status=bounced" in server.log(),
                 "the failure is logged")

        # 5. two domains: two transactions, each with all of its recipients
        n = len(pf.delivered())
        oc.send(server, SENDER, ["erin@" + D, "frank@" + D, "gia@" + D2], "fifth")
        got = pf.wait_delivered(n + 3)
        sc.check(len(got) == n + 3, "three copies for two domains:\n" + server.log())
        sc.check(pf.log().count("message-id=<fifth@test>") == 2,
                 "one transaction per domain:\n" + pf.log())
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty")

        # 6. a remote sender's bounce goes out from <> to the sender's server
        n = len(pf.delivered())
        oc.send(server, "writer@" + D, ["nobody@" + D], "sixth")
        got = pf.wait_delivered(n + 1)
        bounces = [m for m in got if b"multipart/report" in m]
        sc.check(len(bounces) == 1, "the bounce reached the remote sender:\n" + server.log())
        sc.check(b"Return-Path: <>" in bounces[0], "the bounce comes from the null sender")
        sc.check(b"Final-Recipient: rfc822; nobody@" + D.encode() in bounces[0]
                 and b"Subject: sixth" in bounces[0], "it reports the failed recipient")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty after the bounce")

        # 7. DSN parameters and SMTPUTF8 pass through
        c = server.smtp("smtp")
        c.ehlo("client.test")
        c.mail(SENDER, ["RET=HDRS", "ENVID=env7"])
        code, _ = c.rcpt("hoa@" + D, ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;hoa@" + D])
        sc.check(code == 250, "RCPT with DSN parameters accepted")
        code, _ = c.data(sc.message("seventh", sender=SENDER, to="hoa@" + D))
        sc.check(code == 250, "DATA accepted")
        n = len(pf.delivered())
        c.sendmail(SENDER, ["nguy\u1ec5n@" + D],
                   sc.message("eighth", sender=SENDER, to="x@" + D).encode(),
                   mail_options=["SMTPUTF8"])
        c.quit()
        got = pf.wait_delivered(n + 2)
        sc.check(len(got) == n + 2, "both delivered:\n" + server.log() + pf.log())
        plog = pf.log()
        sc.check(oc.wait_for(lambda: "sender delivery status notification" in pf.log()),
                 "NOTIFY=SUCCESS reached Postfix:\n" + pf.log())
        sc.check(any("nguy\u1ec5n@" + D in l and "status=sent" in l
                     for l in pf.log().splitlines()), "the UTF-8 recipient was delivered:\n"
                 + plog)
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty")

        # 8. the sender's mailbox is full: the bounce waits for room
        full = "full@" + sc.DOMAIN
        server.add_account(full, quota="10K")
        oc.send(server, "someone@example.org", [full], "filler", body=("x" * 70 + "\r\n") * 128)
        sc.check(any(b"Subject: filler" in m["data"] for m in server.messages(full)),
                 "the filler is stored (with the quota warnings it causes)")
        oc.send(server, full, ["nobody@" + D], "ninth")

        def bounce_waits():
            q = oc.queue_list(server)
            return q if (len(q) == 1 and q[0][1] == "" and q[0][2] == full
                         and q[0][3] == "deferred") else None
        q = oc.wait_for(bounce_waits)
        sc.check(q is not None, "the bounce waits in the queue: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check("reason=mailbox_full" in server.log() and "mailbox full" in q[0][5],
                 "the reason is logged and listed: %r" % q)
        r = server.quota("set", full, "1M")
        sc.check(r.returncode == 0, "congvu-quota set: " + r.stderr)
        oc.queue_cmd(server, "flush")
        got = oc.wait_for(lambda: [m for m in server.messages(full)
                                   if b"multipart/report" in m["data"]])
        sc.check(got and len(got) == 1, "the bounce lands once there is room:\n" + server.log())
        sc.check(got[0]["data"].startswith(b"Return-Path: <>\r\n"),
                 "delivered from the null sender")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty")

        rc = server.stop()
        sc.check(rc == 0, "congvu-smtpd stops cleanly on SIGTERM (rc %r)" % rc)
        print("outbound delivery: ok")
    finally:
        oc.teardown(lambda: server and server.cleanup(),
                    lambda: pf and pf.stop(),
                    lambda: dns and dns.stop(),
                    lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == "__main__":
    main()
