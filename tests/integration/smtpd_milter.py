"""congvu-smtpd's milter client against real milters and a scripted one:
- congvu-milter-spam: its X-Spam-Status: Yes files the message into Junk,
  and a reject verdict is passed on as 550;
- OpenDKIM (Debian's opendkim) signs mail from an internal client;
- a scripted milter in this file checks the protocol itself: option
  negotiation, the macros, header change/insert/delete, body replacement,
  a REPLYCODE at RCPT, DISCARD, QUARANTINE, and the per-milter timeout with
  smtpd.milter_default_action."""

import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import (BUILD, DOMAIN, Server, check, free_port, message,  # noqa: E402
                          wait_port)

DEMO = "demo@" + DOMAIN
MILTER_SPAM = os.path.join(BUILD, "milter-spam", "congvu-milter-spam")


class ScriptedMilter(threading.Thread):
    """A milter speaking protocol version 6 from a script:
    replies[cmd] = (code, data) answers command byte cmd (default 'c');
    eom_mods = [(code, data)...] are sent before the final 'c' at end of
    message; hang = True never answers anything."""

    def __init__(self, replies=None, eom_mods=None, hang=False):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.spec = "inet:%d@127.0.0.1" % self.port
        self.replies = replies or {}
        self.eom_mods = eom_mods or []
        self.hang = hang
        self.seen = []       # (cmd, data) of every packet
        self.macros = {}
        self.stop = False

    def run(self):
        self.sock.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                n = struct.unpack(">I", buf[:4])[0]
                cmd, data = buf[4:5].decode(), buf[5:4 + n]
                buf = buf[4 + n:]
                self.seen.append((cmd, data))
                if self.hang:
                    continue
                if cmd == "O":
                    # version 6, actions: add/change headers, body, quarantine;
                    # steps: everything
                    c.sendall(self.packet("O", struct.pack(">III", 6, 0x01 | 0x02 | 0x10 | 0x20,
                                                           0)))
                    continue
                if cmd == "D":
                    parts = data[1:].split(b"\0")
                    for i in range(0, len(parts) - 1, 2):
                        self.macros[parts[i].decode()] = parts[i + 1].decode()
                    continue
                if cmd in ("A", "Q"):
                    if cmd == "Q":
                        return
                    continue
                if cmd == "E":
                    for code, payload in self.eom_mods:
                        c.sendall(self.packet(code, payload))
                code, payload = self.replies.get(cmd, ("c", b""))
                c.sendall(self.packet(code, payload))
        except OSError:
            return
        finally:
            c.close()

    @staticmethod
    def packet(code, data):
        return struct.pack(">I", len(data) + 1) + code.encode() + data

    def close(self):
        self.stop = True
        self.sock.close()


def send(srv, subject, extra="", rcpts=(DEMO,), sender="sender@example.org", body="Hi.\r\n"):
    c = srv.smtp("smtp")
    try:
        refused = c.sendmail(sender, list(rcpts), message(subject, extra=extra, body=body))
        result = (250, refused)
    except Exception as e:  # smtplib raises on a refused message
        result = (getattr(e, "smtp_code", None) or
                  (list(e.recipients.values())[0][0] if hasattr(e, "recipients") else 0), e)
    try:
        c.quit()
    except Exception:
        pass
    return result


def stored(srv, subject):
    return [m for m in srv.messages(DEMO) if ("Subject: " + subject).encode() in m["data"]]


def with_server(milters, fn, **settings):
    s = {"smtpd.milters": ",".join(milters), "smtpd.milter_timeout": "2s"}
    s.update(settings)
    srv = Server(services=("smtp", "submission"), settings=s)
    try:
        srv.add_account(DEMO)
        srv.start()
        fn(srv)
        check(srv.stop() == 0, "exit code after SIGTERM")
    except Exception:
        print(srv.log()[-4000:], file=sys.stderr)
        raise
    finally:
        srv.cleanup()


def test_scripted_protocol():
    m = ScriptedMilter(
        replies={"R": ("y", b"550 5.7.1 not this one\0")},
        eom_mods=[
            ("h", b"X-Added\0yes\0"),
            ("i", struct.pack(">I", 0) + b"X-Top\0first\0"),
            ("m", struct.pack(">I", 1) + b"X-Remove-Me\0\0"),
            ("m", struct.pack(">I", 1) + b"Subject\0changed subject\0"),
            ("b", b"New body.\r\n"),
        ])
    m.start()

    def body(srv):
        # RCPT: the milter's reply code refuses the recipient
        code, e = send(srv, "scripted", extra="X-Remove-Me: please\r\n")
        check(code == 550, "REPLYCODE at RCPT not applied: %r" % (e,))
        m.replies = {}
        code, _ = send(srv, "scripted", extra="X-Remove-Me: please\r\n")
        check(code == 250, "message refused")
        got = [x for x in srv.messages(DEMO) if b"changed subject" in x["data"]]
        check(len(got) == 1, "modified message not stored")
        d = got[0]["data"]
        hdr, _, bodypart = d.partition(b"\r\n\r\n")
        check(hdr.startswith(b"Return-Path: <sender@example.org>\r\nX-Top: first\r\nReceived:"),
              "inserted header not at the top: %r" % hdr[:200])
        check(b"X-Added: yes" in hdr and b"X-Remove-Me" not in hdr, "add/delete: %r" % hdr)
        check(bodypart == b"New body.\r\n", "body not replaced: %r" % bodypart)
        for name in ("j", "i", "{client_addr}", "{daemon_name}", "{mail_addr}", "{rcpt_addr}"):
            check(name in m.macros, "macro %s not sent: %r" % (name, m.macros))
        check(m.macros["{client_addr}"] == "127.0.0.1" and m.macros["j"] == "mx.test",
              "macro values: %r" % m.macros)
        cmds = [c for c, _ in m.seen]
        for c in "OCHMRTLNBE":
            check(c in cmds, "stage %s not sent: %r" % (c, cmds))
        # DISCARD: accepted, not stored
        m.eom_mods = []
        m.replies = {"E": ("d", b"")}
        code, _ = send(srv, "discarded")
        check(code == 250 and not stored(srv, "discarded"), "DISCARD")
        # QUARANTINE: into Junk
        m.replies = {}
        m.eom_mods = [("q", b"suspicious\0")]
        code, _ = send(srv, "quarantined")
        q = stored(srv, "quarantined")
        check(code == 250 and len(q) == 1 and q[0]["mailbox"] == "Junk", "QUARANTINE")
        # TEMPFAIL at end of message
        m.eom_mods = []
        m.replies = {"E": ("t", b"")}
        code, _ = send(srv, "tempfailed")
        check(code == 451 and not stored(srv, "tempfailed"), "TEMPFAIL: %r" % code)

    with_server([m.spec], body)
    m.close()


def test_timeouts():
    hung = ScriptedMilter(hang=True)
    hung.start()

    def tempfail(srv):
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=30)
        greeting = s.recv(4096)
        s.close()
        check(greeting.startswith(b"451 4.7.1"), "hung milter, tempfail: %r" % greeting)

    with_server([hung.spec], tempfail)

    def accept(srv):
        code, _ = send(srv, "despite hung milter")
        check(code == 250 and stored(srv, "despite hung milter"), "hung milter, accept")

    with_server([hung.spec], accept, **{"smtpd.milter_default_action": "accept"})
    # a milter that is not there at all
    dead = "inet:%d@127.0.0.1" % free_port()

    def reject(srv):
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=30)
        greeting = s.recv(4096)
        s.close()
        check(greeting.startswith(b"550"), "dead milter, reject: %r" % greeting)

    with_server([dead], reject, **{"smtpd.milter_default_action": "reject"})
    hung.close()


def start_milter_spam(tmp, *overrides):
    port = free_port()
    conf = os.path.join(tmp, "milter-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("[global]\ndata_dir = %s/milter-data-%d\n" % (tmp, port))
    args = [MILTER_SPAM, "-c", conf, "-o", "milter-spam.listen=inet:%d@127.0.0.1" % port,
            "-o", "milter-spam.spf=no"]
    for o in overrides:
        args += ["-o", o]
    log = open(os.path.join(tmp, "milter-%d.log" % port), "w")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    if not wait_port(port):
        p.kill()
        p.wait()
        with open(log.name) as f:
            check(False, "congvu-milter-spam did not start: " + f.read())
    return p, "inet:%d@127.0.0.1" % port


def test_milter_spam():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="congvu-smtpd-milter-")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        junk, junk_spec = start_milter_spam(tmp, "milter-spam.junk_threshold=-50")
        procs.append(junk)
        rej, rej_spec = start_milter_spam(tmp, "milter-spam.junk_threshold=-60",
                                         "milter-spam.reject_threshold=-50")
        procs.append(rej)
        def junked(srv):
            code, _ = send(srv, "spam test")
            got = stored(srv, "spam test")
            check(code == 250 and len(got) == 1, "not delivered")
            check(b"X-Spam-Status: Yes" in got[0]["data"] and got[0]["mailbox"] == "Junk",
                  "not filed in Junk: %s %r" % (got[0]["mailbox"], got[0]["data"][:600]))
        with_server([junk_spec], junked)

        def rejected(srv):
            code, _ = send(srv, "rejected spam")
            check(code == 550 and not stored(srv, "rejected spam"), "reject: %r" % code)
        with_server([rej_spec], rejected)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        subprocess.run(["rm", "-rf", tmp])


def test_opendkim():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="congvu-smtpd-dkim-")
    os.chmod(tmp, 0o755)
    subprocess.run(["opendkim-genkey", "-D", tmp, "-d", DOMAIN, "-s", "sel"], check=True)
    port = free_port()
    conf = os.path.join(tmp, "opendkim.conf")
    with open(conf, "w") as f:
        f.write("Syslog no\nBackground no\nSocket inet:%d@127.0.0.1\nDomain %s\n"
                "KeyFile %s/sel.private\nSelector sel\nMode sv\nInternalHosts 127.0.0.1\n"
                "PidFile %s/opendkim.pid\nRequireSafeKeys no\n" % (port, DOMAIN, tmp, tmp))
    log = open(os.path.join(tmp, "opendkim.log"), "w")
    p = subprocess.Popen(["opendkim", "-f", "-x", conf], stdout=log, stderr=subprocess.STDOUT)
    try:
        check(wait_port(port), "opendkim did not start")

        def signed(srv):
            c = srv.smtp("submission", starttls=True, login=(DEMO, "secret"))
            c.sendmail(DEMO, [DEMO], message("dkim test", sender=DEMO))
            c.quit()
            got = stored(srv, "dkim test")
            check(len(got) == 1, "not delivered")
            d = got[0]["data"]
            check(b"DKIM-Signature:" in d and b"d=" + DOMAIN.encode() in d and b"s=sel" in d,
                  "not signed by OpenDKIM: %r" % d[:800])
        with_server(["inet:%d@127.0.0.1" % port], signed)
    finally:
        p.terminate()
        p.wait(10)
        subprocess.run(["rm", "-rf", tmp])


def main():
    test_scripted_protocol()
    test_timeouts()
    test_milter_spam()
    test_opendkim()
    print("ok")


if __name__ == "__main__":
    main()
