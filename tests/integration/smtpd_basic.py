"""congvu-smtpd end to end with real clients over TLS: Python smtplib
(STARTTLS on MX and submission, implicit TLS on smtps, LMTP), swaks and
curl; stored messages carry Received: and Return-Path:, a message for
several recipients is stored once, X-Spam-Status: Yes goes to Junk, relay
mail from an authenticated user is queued, SIGHUP reloads the certificate
without dropping a session, SIGTERM exits 0, and start-up errors name the
setting."""

import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import (DOMAIN, SMTPD, Server, check, fail, free_port, make_cert,  # noqa: E402
                          message)

DEMO = "demo@" + DOMAIN
ALICE = "alice@" + DOMAIN


def test_delivery(srv):
    # MX with STARTTLS, two local recipients: one copy of the bytes
    c = srv.smtp("smtp", starttls=True)
    check("starttls" not in c.esmtp_features, "STARTTLS offered again after TLS")
    refused = c.sendmail("sender@example.org", [DEMO, ALICE], message("two rcpts"))
    check(refused == {}, "refused: %r" % refused)
    c.quit()
    d = [m for m in srv.messages(DEMO) if b"two rcpts" in m["data"]]
    a = [m for m in srv.messages(ALICE) if b"two rcpts" in m["data"]]
    check(len(d) == 1 and len(a) == 1, "message not in both mailboxes exactly once")
    check(d[0]["blob"] == a[0]["blob"], "the message bytes are stored twice")
    data = d[0]["data"]
    check(data.startswith(b"Return-Path: <sender@example.org>\r\nReceived: from client.test"),
          "no Return-Path/Received at the top: %r" % data[:200])
    check(b"with ESMTPS id" in data and b"(using TLSv1.3 with cipher" in data,
          "Received: does not show TLS: %r" % data[:400])
    check(d[0]["mailbox"] == "INBOX", "not in INBOX")

    # spam verdict header: into Junk
    c = srv.smtp("smtp", starttls=True)
    c.sendmail("s@example.org", [DEMO],
               message("spammy", extra="X-Spam-Status: Yes, score=9.1\r\n"))
    c.quit()
    junk = [m for m in srv.messages(DEMO) if b"spammy" in m["data"]]
    check(len(junk) == 1 and junk[0]["mailbox"] == "Junk", "spam not filed into Junk: %r"
          % [(m["mailbox"]) for m in junk])


def test_bdat_smtputf8(srv):
    # CHUNKING: two BDAT chunks, the second LAST
    from smtpd_common import raw_session
    body = message("bdat chunks").encode()
    half = len(body) // 2
    out = raw_session(srv.ports["smtp"], [
        b"EHLO client.test\r\n", b"MAIL FROM:<b@example.org> BODY=8BITMIME\r\n",
        b"RCPT TO:<%s>\r\n" % DEMO.encode(),
        b"BDAT %d\r\n" % half + body[:half],
        b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:], b"QUIT\r\n"])
    check(out.count(b"\r\n250 ") + out.startswith(b"250 ") >= 4 and b"221 " in out,
          "BDAT session: %r" % out[-300:])
    got = [m for m in srv.messages(DEMO) if b"bdat chunks" in m["data"]]
    check(len(got) == 1 and got[0]["data"].endswith(body), "BDAT message not stored intact")
    # SMTPUTF8: a UTF-8 sender and header
    c = srv.smtp("smtp", starttls=True)
    check("smtputf8" in c.esmtp_features, "SMTPUTF8 not offered")
    msg = ("From: Nguy\u1ec5n <ng\u01b0\u1eddi@example.vn>\r\nSubject: ti\u1ebfng vi\u1ec7t\r\n"
           "\r\nXin ch\u00e0o.\r\n").encode("utf-8")
    c.sendmail("ng\u01b0\u1eddi@example.vn", [DEMO], msg, mail_options=["SMTPUTF8"])
    c.quit()
    got = [m for m in srv.messages(DEMO) if "ti\u1ebfng vi\u1ec7t".encode() in m["data"]]
    check(len(got) == 1 and b"with UTF8SMTPS id" in got[0]["data"] and
          "Return-Path: <ng\u01b0\u1eddi@example.vn>".encode() in got[0]["data"],
          "SMTPUTF8 message: %r" % (got[0]["data"][:300] if got else None))


def test_submission(srv):
    # submission: STARTTLS + AUTH LOGIN, mail to a local and a remote user
    c = srv.smtp("submission", starttls=True)
    check("auth" in c.esmtp_features, "AUTH not offered after STARTTLS")
    c.user, c.password = DEMO, "secret"
    code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
    check(code == 235, "AUTH LOGIN failed")
    refused = c.sendmail(DEMO, [ALICE, "bob@example.net"], message("outbound", sender=DEMO))
    check(refused == {}, "refused: %r" % refused)
    c.quit()
    check(any(b"outbound" in m["data"] for m in srv.messages(ALICE)), "local copy missing")
    q = subprocess.run([SMTPD, "-c", srv.conf, "queue", "list"], capture_output=True, text=True,
                       timeout=30)
    check(q.returncode == 0, "queue list failed: " + q.stderr)
    lines = [ln.split("\t") for ln in q.stdout.splitlines()]
    check(len(lines) == 1 and lines[0][1] == DEMO and lines[0][2] == "bob@example.net"
          and lines[0][3] in ("queued", "deferred"), "queue list: %r" % q.stdout)
    qid = lines[0][0]
    show = subprocess.run([SMTPD, "-c", srv.conf, "queue", "show", qid], capture_output=True,
                          timeout=30)
    check(show.returncode == 0 and b"rcpt bob@example.net" in show.stdout
          and b"Subject: outbound" in show.stdout
          and b"Return-Path" not in show.stdout, "queue show: %r" % show.stdout[:500])
    fl = subprocess.run([SMTPD, "-c", srv.conf, "queue", "flush"], capture_output=True,
                        text=True, timeout=30)
    check(fl.returncode == 0 and fl.stdout.startswith("1 "), "queue flush: " + fl.stdout)
    de = subprocess.run([SMTPD, "-c", srv.conf, "queue", "delete", qid], capture_output=True,
                        timeout=30)
    check(de.returncode == 0, "queue delete failed")
    de = subprocess.run([SMTPD, "-c", srv.conf, "queue", "delete", qid], capture_output=True,
                        timeout=30)
    check(de.returncode != 0, "deleting a missing entry succeeded")

    # smtps (implicit TLS) with AUTH PLAIN
    c = srv.smtp("smtps", login=(DEMO, "secret"))
    c.sendmail(DEMO, [DEMO], message("via smtps", sender=DEMO))
    c.quit()
    check(any(b"via smtps" in m["data"] and b"ESMTPSA" in m["data"]
              for m in srv.messages(DEMO)), "smtps message missing or not ESMTPSA")


def test_lmtp(srv):
    c = smtplib.LMTP("127.0.0.1", srv.ports["lmtp"], timeout=20)
    c.ehlo("edge.test")
    c.mail("x@example.org")
    check(c.rcpt(DEMO)[0] == 250, "LMTP RCPT refused")
    check(c.rcpt(ALICE)[0] == 250, "LMTP RCPT refused")
    check(c.rcpt("nobody@" + DOMAIN)[0] == 550, "unknown LMTP recipient accepted")
    c.putcmd("data")
    code, _ = c.getreply()
    check(code == 354, "LMTP DATA")
    c.send(message("over lmtp").encode() + b".\r\n")
    replies = [c.getreply()[0] for _ in range(2)]
    check(replies == [250, 250], "LMTP per-recipient replies: %r" % replies)
    c.quit()
    m = [m for m in srv.messages(ALICE) if b"over lmtp" in m["data"]]
    check(len(m) == 1 and b"with LMTP id" in m[0]["data"], "LMTP message not stored")
    # LMTP on a unix socket too (the listen list has both)
    c = smtplib.LMTP(srv.lmtp_socket, timeout=20)
    c.ehlo("edge.test")
    refused = c.sendmail("x@example.org", [DEMO], message("lmtp unix socket"))
    check(refused == {}, "LMTP over a unix socket refused: %r" % refused)
    c.quit()
    check(any(b"lmtp unix socket" in m["data"] for m in srv.messages(DEMO)),
          "LMTP over a unix socket not stored")


def test_privileges(srv):
    """Started as root, the children run as global.user."""
    if os.geteuid() != 0:
        return
    import pwd
    uid = pwd.getpwnam(srv.settings["global.user"]).pw_uid
    srv.wait_log("event=started process=delivery")
    kids = []
    for line in srv.log().splitlines():
        for kind in ("delivery", "worker"):
            if "event=started process=%s" % kind in line:
                kids.append(int(line.split("congvu-smtpd[")[1].split("]")[0]))
    check(len(kids) == 3, "children: %r" % kids)
    for pid in kids:
        with open("/proc/%d/status" % pid) as f:
            uids = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
        check(all(int(u) == uid for u in uids), "child %d runs as %r" % (pid, uids))


def test_swaks_curl(srv):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["submission"],
                        "--tls", "--auth", "PLAIN", "--auth-user", DEMO, "--auth-password",
                        "secret", "--from", DEMO, "--to", ALICE, "--header",
                        "Subject: via swaks", "--tls-verify", "--tls-ca-path", srv.cert],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "swaks failed:\n" + r.stdout[-2000:])
    mailfile = os.path.join(srv.dir, "curl.eml")
    with open(mailfile, "w") as f:
        f.write(message("via curl", sender=DEMO, to=ALICE))
    r = subprocess.run(["curl", "-s", "--ssl-reqd", "--cacert", srv.cert,
                        "smtp://localhost:%d" % srv.ports["submission"],
                        "--resolve", "localhost:%d:127.0.0.1" % srv.ports["submission"],
                        "--user", DEMO + ":secret", "--mail-from", DEMO, "--mail-rcpt", ALICE,
                        "--upload-file", mailfile], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "curl failed: %d %s" % (r.returncode, r.stderr))
    got = srv.messages(ALICE)
    check(any(b"via swaks" in m["data"] for m in got), "swaks message missing")
    check(any(b"via curl" in m["data"] for m in got), "curl message missing")


def test_reload(srv):
    # a session open across SIGHUP keeps working; new sessions get the new
    # certificate
    c = srv.smtp("submission", starttls=True, login=(DEMO, "secret"))
    cert2, key2 = make_cert(srv.dir, "cert2")
    shutil.copy(cert2, srv.cert)
    shutil.copy(key2, srv.key)
    srv.settings["smtpd.max_recipients"] = "1"
    srv.write_config()
    srv.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if srv.log().count("event=reloaded process=worker") >= 2:
            break
        subprocess.run(["sleep", "0.1"])
    check(srv.log().count("event=reloaded process=worker") >= 2, "workers did not reload")
    c.sendmail(DEMO, [DEMO], message("across reload", sender=DEMO))
    c.quit()
    check(any(b"across reload" in m["data"] for m in srv.messages(DEMO)), "lost across reload")
    # the new certificate is served (the old CA no longer verifies it)
    ctx = ssl.create_default_context(cafile=cert2)
    c = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=20)
    c.starttls(context=ctx)
    c.quit()
    # and the new configuration applies to new sessions
    c = srv.smtp("smtp")
    c.mail("x@example.org")
    check(c.rcpt(DEMO)[0] == 250, "first recipient refused after reload")
    code, msg = c.rcpt(ALICE)
    check(code == 452 and msg.startswith(b"4.5.3"), "reloaded max_recipients not applied: %d"
          % code)
    c.quit()


def test_startup_errors():
    # each start-up error: non-zero exit, one line naming the setting
    port = free_port()
    d = Server(services=("smtp",))
    try:
        cases = [
            (["-o", "smtpd.max_recipients=zero"], "smtpd.max_recipients"),
            (["-o", "tls.cert=/nonexistent/cert.pem",
              "-o", "smtpd.smtps_listen=127.0.0.1:%d" % port], "tls.cert"),
            (["-o", "smtpd.trusted_networks=10.0.0.0/99"], "trusted_networks"),
            (["-o", "global.data_dir=/proc/congvu-nonexistent"], "global.data_dir"),
        ]
        for args, name in cases:
            r = subprocess.run([SMTPD, "-c", d.conf] + args, capture_output=True, text=True,
                               timeout=30)
            lines = r.stderr.strip().splitlines()
            check(r.returncode != 0 and len(lines) == 1 and name in lines[0],
                  "%r: rc=%d stderr=%r" % (args, r.returncode, r.stderr))
        # port in use
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", d.ports["smtp"]))
        s.listen(1)
        r = subprocess.run([SMTPD, "-c", d.conf], capture_output=True, text=True, timeout=30)
        s.close()
        check(r.returncode != 0 and "smtpd.smtp_listen" in r.stderr and "in use" in r.stderr,
              "port in use: %r" % r.stderr)
        # -n prints the configuration
        r = subprocess.run([SMTPD, "-c", d.conf, "-n"], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 0 and "max_recipients = 1000" in r.stdout, "-n output")
    finally:
        d.cleanup()


def main():
    srv = Server()
    srv.lmtp_socket = os.path.join(srv.dir, "lmtp.sock")
    srv.settings["smtpd.lmtp_listen"] += ", unix:" + srv.lmtp_socket
    srv.write_config()
    try:
        srv.add_account(DEMO)
        srv.add_account(ALICE)
        srv.start()
        test_privileges(srv)
        test_delivery(srv)
        test_bdat_smtputf8(srv)
        test_submission(srv)
        test_lmtp(srv)
        test_swaks_curl(srv)
        test_reload(srv)
        rc = srv.stop()
        check(rc == 0, "exit code %r after SIGTERM" % rc)
        check("event=stopped process=delivery" in srv.log(), "delivery process did not stop")
        check(not os.path.exists(srv.lmtp_socket), "unix socket left behind")
    except Exception:
        print(srv.log(), file=sys.stderr)
        raise
    finally:
        srv.cleanup()
    test_startup_errors()
    print("ok")


if __name__ == "__main__":
    main()
