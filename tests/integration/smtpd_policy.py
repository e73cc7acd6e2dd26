"""Every policy rule of congvu-smtpd with its reply code, driven over
loopback with Python's smtplib and raw sockets (TLS where the rule is
about TLS): unknown user, quota at RCPT (SIZE) and after the data, no open
relay, AUTH required on submission and smtps, no AUTH before TLS, sender
ownership, message size, recipients, sessions per IP, errors per session,
command timeout, bare CR/LF and SMTP smuggling, STARTTLS injection,
overlong lines, failed AUTH logged for fail2ban."""

import os
import smtplib
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import DOMAIN, Server, check, message, raw_session, read_reply  # noqa: E402

DEMO = "demo@" + DOMAIN
SMALL = "small@" + DOMAIN


def code_of(reply):
    """The code of the last reply line."""
    lines = [ln for ln in reply.split(b"\r\n") if ln]
    return lines[-1][:9].decode() if lines else ""


def codes(data):
    out = []
    for ln in data.split(b"\r\n"):
        if len(ln) >= 4 and ln[3:4] == b" ":
            out.append(ln[:3].decode())
    return out


def expect(cond, what, srv):
    if not cond:
        print(srv.log()[-3000:], file=sys.stderr)
    check(cond, what)


def test_recipients_and_quota(srv):
    c = srv.smtp("smtp")
    c.mail("a@example.org")
    code, msg = c.rcpt("nosuchuser@" + DOMAIN)
    expect(code == 550 and msg.startswith(b"5.1.1"), "unknown user: %d %r" % (code, msg), srv)
    # fill the 30K mailbox with 20K
    c.rset()
    body = "x" * 70 + "\r\n"
    big = message("first 20k", body=body * 280)
    c.sendmail("a@example.org", [SMALL], big)
    # SIZE known at RCPT: does not fit any more
    c.mail("a@example.org", ["SIZE=%d" % len(big)])
    code, msg = c.rcpt(SMALL)
    expect(code == 452 and msg.startswith(b"4.2.2"), "over quota at RCPT: %d %r" % (code, msg),
           srv)
    c.rset()
    # no SIZE: accepted at RCPT, refused after the data
    c.mail("a@example.org")
    expect(c.rcpt(SMALL)[0] == 250, "RCPT without SIZE refused", srv)
    code, msg = c.data(big)
    expect(code == 452 and msg.startswith(b"4.2.2"), "over quota after data: %d %r"
           % (code, msg), srv)
    # larger than the whole quota: always 552 5.2.2
    c.mail("a@example.org", ["SIZE=40000"])
    code, msg = c.rcpt(SMALL)
    expect(code == 552 and msg.startswith(b"5.2.2"), "too big for quota: %d %r" % (code, msg),
           srv)
    c.rset()
    # recipients per message (max 3 here)
    c.mail("a@example.org")
    for _ in range(3):
        expect(c.rcpt(DEMO)[0] == 250, "RCPT refused below the limit", srv)
    code, msg = c.rcpt(DEMO)
    expect(code == 452 and msg.startswith(b"4.5.3"), "too many recipients: %d" % code, srv)
    c.rset()
    # message size (64K): SIZE= at MAIL and the data itself
    code, msg = c.mail("a@example.org", ["SIZE=100000"])
    expect(code == 552 and msg.startswith(b"5.3.4"), "SIZE over the limit: %d" % code, srv)
    c.mail("a@example.org")
    c.rcpt(DEMO)
    code, msg = c.data(message("huge", body=body * 1000))
    expect(code == 552 and msg.startswith(b"5.3.4"), "data over the limit: %d %r"
           % (code, msg), srv)
    c.quit()
    stored = [m for m in srv.messages(SMALL)]
    expect(len(stored) == 1, "over-quota mail was stored: %d" % len(stored), srv)


def test_relay(srv):
    # 127.0.0.1 is not in trusted_networks here
    c = srv.smtp("smtp", starttls=True)
    c.mail("a@example.org")
    code, msg = c.rcpt("victim@example.com")
    expect(code == 554 and msg.startswith(b"5.7.1"), "open relay: %d %r" % (code, msg), srv)
    c.quit()
    # authenticated users may relay
    c = srv.smtp("submission", starttls=True, login=(DEMO, "secret"))
    c.mail(DEMO)
    expect(c.rcpt("friend@example.com")[0] == 250, "authenticated relay refused", srv)
    c.quit()


def test_auth_rules(srv):
    # submission without AUTH: MAIL refused
    c = srv.smtp("submission", starttls=True)
    code, msg = c.mail(DEMO)
    expect(code == 530 and msg.startswith(b"5.7.0"), "submission without AUTH: %d" % code, srv)
    c.quit()
    c = srv.smtp("smtps")
    code, _ = c.mail(DEMO)
    expect(code == 530, "smtps without AUTH: %d" % code, srv)
    c.quit()
    # AUTH before TLS: not offered, refused
    c = srv.smtp("submission")
    expect("auth" not in c.esmtp_features, "AUTH offered before TLS", srv)
    code, msg = c.docmd("AUTH", "PLAIN AGRlbW9AbGFtZG9uZy5nb3Yudm4Ac2VjcmV0")
    expect(code == 538 and msg.startswith(b"5.7.11"), "AUTH before TLS: %d" % code, srv)
    c.quit()
    # wrong password: 535, logged with the client address for fail2ban
    c = srv.smtp("submission", starttls=True)
    try:
        c.login(DEMO, "wrong")
        expect(False, "wrong password accepted", srv)
    except smtplib.SMTPAuthenticationError as e:
        expect(e.smtp_code == 535, "bad AUTH code %d" % e.smtp_code, srv)
    c.quit()
    expect("event=auth_failed" in srv.log() and "ip=127.0.0.1" in srv.log(),
           "failed AUTH not logged", srv)
    # the sender must be the user's own address (or an allowed alias)
    c = srv.smtp("submission", starttls=True, login=(DEMO, "secret"))
    code, msg = c.mail("ceo@" + DOMAIN)
    expect(code == 553 and msg.startswith(b"5.7.1"), "foreign sender accepted: %d" % code, srv)
    expect(c.mail("info@" + DOMAIN)[0] == 250, "alias sender refused", srv)
    c.rset()
    expect(c.mail(DEMO.upper())[0] == 250, "own address refused", srv)
    c.quit()


def test_smuggling_and_lines(srv):
    port = srv.ports["smtp"]
    # bare LF in a command
    out = raw_session(port, [b"EHLO x\r\n", b"NOOP\n", b"QUIT\r\n"])
    expect(codes(out)[-3:] == ["250", "500", "221"], "bare LF command: %r" % out, srv)
    # smuggling: "\n.\n" is not the end of data; the smuggled MAIL is not run
    out = raw_session(port, [
        b"EHLO x\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<%s>\r\n" % DEMO.encode(),
        b"DATA\r\n",
        b"Subject: smuggle\r\n\r\nhi\n.\nMAIL FROM:<evil@example.org>\r\n"
        b"RCPT TO:<" + DEMO.encode() + b">\r\nDATA\r\nSubject: evil\r\n.\r\n",
        b"QUIT\r\n"])
    expect(codes(out)[-2:] == ["550", "221"] and b"bare CR or LF" in out,
           "smuggling: %r" % out, srv)
    expect(not any(b"smuggle" in m["data"] or b"evil" in m["data"] for m in
                   srv.messages(DEMO)), "smuggled message stored", srv)
    # a command line over 1000 octets
    out = raw_session(port, [b"EHLO x\r\n", b"NOOP " + b"a" * 1200 + b"\r\n", b"QUIT\r\n"])
    expect(codes(out)[-2:] == ["500", "221"] and b"line too long" in out,
           "long line: %r" % out[-200:], srv)


def test_starttls_injection(srv):
    s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=10)
    read_reply(s)
    s.sendall(b"EHLO x\r\n")
    read_reply(s)
    # the RSET rides in the same packet as STARTTLS and must be discarded
    s.sendall(b"STARTTLS\r\nRSET\r\n")
    r = read_reply(s)
    expect(r.startswith(b"220"), "STARTTLS: %r" % r, srv)
    t = srv.tls_context().wrap_socket(s, server_hostname="localhost")
    t.sendall(b"NOOP\r\n")
    r = read_reply(t)
    expect(r.startswith(b"250 ") and r.count(b"\r\n") == 1, "after STARTTLS: %r" % r, srv)
    t.sendall(b"QUIT\r\n")
    read_reply(t)
    t.close()
    expect("event=starttls_injection" in srv.log() and "discarded=6" in srv.log(),
           "injection not logged", srv)


def test_limits(srv):
    port = srv.ports["smtp"]
    # errors per session (3 here)
    out = raw_session(port, [b"FOO\r\n", b"BAR\r\n", b"BAZ\r\n"], read_until_close=True)
    expect(codes(out)[-1] == "421", "error limit: %r" % out, srv)
    # sessions per client IP (2 here)
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    b = socket.create_connection(("127.0.0.1", port), timeout=10)
    expect(read_reply(a).startswith(b"220") and read_reply(b).startswith(b"220"),
           "first sessions refused", srv)
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    r = read_reply(c)
    expect(r.startswith(b"421 4.7.0"), "third session from one IP: %r" % r, srv)
    for s in (a, b, c):
        s.close()
    # command timeout (2s here): 421 4.4.2, then the server closes; the
    # server may not have seen the closes above yet: retry until greeted
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if read_reply(s).startswith(b"220 "):
            break
        s.close()
        time.sleep(0.05)
    r = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        r += d
    s.close()
    expect(r.startswith(b"421 4.4.2"), "timeout reply: %r" % r, srv)


def test_unread_replies(srv):
    """A client pipelining commands without ever reading the replies is no
    longer read from once its replies pile up: the server's memory for it
    stays bounded (the client's sends block), instead of buffering every
    reply. The kernel's socket buffers hold a few MB at most; the client
    offers 48 MB of NOOPs (112 MB of replies)."""
    s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    read_reply(s)
    chunk = b"NOOP\r\n" * 10000
    sent = 0
    blocked = False
    try:
        while sent < 48 * 1024 * 1024:
            s.sendall(chunk)
            sent += len(chunk)
    except (socket.timeout, ConnectionError):
        blocked = True  # not read any more (or dropped by a timeout)
    s.close()
    expect(blocked, "server read %d bytes of commands whose replies were never read" % sent,
           srv)


def test_milter_reply_codes():
    """A milter's REPLYCODE is passed on as one complete reply: a multi-line
    one (smfi_setmlreply) must not reach the client as a lone "550-" line
    that leaves it waiting, and a malformed code falls back to the default."""
    from smtpd_milter import ScriptedMilter
    m = ScriptedMilter(replies={"R": ("y", b"550-5.7.1 first line\r\n550 5.7.1 last line\0")})
    m.start()
    srv = Server(services=("smtp",), settings={"smtpd.milters": m.spec,
                                               "smtpd.milter_timeout": "5s"})
    try:
        srv.add_account(DEMO)
        srv.start()
        port = srv.ports["smtp"]
        out = raw_session(port, [b"EHLO x\r\n", b"MAIL FROM:<a@example.org>\r\n",
                                 b"RCPT TO:<%s>\r\n" % DEMO.encode(), b"QUIT\r\n"], timeout=5)
        expect(codes(out) == ["220", "250", "250", "550", "221"],
               "multi-line milter reply: %r" % out[-300:], srv)
        expect(b"550 5.7.1 first line\r\n" in out, "milter reply text: %r" % out[-300:], srv)
        m.replies = {"R": ("y", b"5ab not a code\0")}
        out = raw_session(port, [b"EHLO x\r\n", b"MAIL FROM:<a@example.org>\r\n",
                                 b"RCPT TO:<%s>\r\n" % DEMO.encode(), b"QUIT\r\n"], timeout=5)
        expect(codes(out) == ["220", "250", "250", "550", "221"] and b"5ab" not in out,
               "malformed milter reply code passed on: %r" % out[-300:], srv)
        # end-of-message modifications are bounded: a milter growing the
        # body or the header list without end fails (default: tempfail)
        m.replies = {}
        for name, mods in (("bigbody", [("b", b"x" * 65000)] * 70),
                           ("manyhdrs", [("h", b"X-Flood\0y\0")] * 1200)):
            m.eom_mods = mods
            c = srv.smtp("smtp")
            try:
                c.sendmail("a@example.org", [DEMO], message(name))
                code = 250
            except smtplib.SMTPDataError as e:
                code = e.smtp_code
            c.close()
            stored = [x for x in srv.messages(DEMO) if ("Subject: " + name).encode() in x["data"]]
            expect(code == 451 and not stored,
                   "unbounded milter modification %s accepted: %r" % (name, code), srv)
        m.eom_mods = []
        c = srv.smtp("smtp")
        c.sendmail("a@example.org", [DEMO], message("after"))
        c.quit()
        check(srv.stop() == 0, "exit code after SIGTERM")
    finally:
        srv.cleanup()
        m.close()


def main():
    srv = Server(settings={
        "smtpd.trusted_networks": "192.0.2.0/24",
        "smtpd.max_message_size": "64K",
        "smtpd.max_recipients": "3",
        "smtpd.sender_aliases": "%s=info@%s|sales@%s" % (DEMO, DOMAIN, DOMAIN),
    })
    try:
        srv.add_account(DEMO)
        srv.add_account(SMALL, quota="30K")
        srv.start()
        test_recipients_and_quota(srv)
        test_relay(srv)
        test_auth_rules(srv)
        test_smuggling_and_lines(srv)
        test_starttls_injection(srv)
        test_unread_replies(srv)
        check(srv.stop() == 0, "exit code after SIGTERM")
    finally:
        srv.cleanup()
    # the per-session and per-client limits, on a server of their own
    srv = Server(services=("smtp",), settings={
        "smtpd.max_errors": "3",
        "smtpd.max_sessions_per_ip": "2",
        "smtpd.command_timeout": "2s",
    })
    try:
        srv.start()
        test_limits(srv)
        check(srv.stop() == 0, "exit code after SIGTERM")
    finally:
        srv.cleanup()
    test_milter_reply_codes()
    print("ok")


if __name__ == "__main__":
    main()
