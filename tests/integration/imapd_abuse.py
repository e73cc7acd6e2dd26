"""congvu-imapd against bad input: a literal announcing 4 GB, deep
parentheses, a 100 KB line, invalid UTF-8 and modified UTF-7, commands in
the wrong state, pipelining, garbage. Each is answered BAD/NO (or BYE where
the stream cannot be resynchronised) and the server keeps serving."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapd_common import Server, Raw, check, USER, PASSWORD  # noqa: E402


def main():
    # 127.0.0.1 trusted: plaintext login allowed; failed logins delayed
    srv = Server(extra=("imapd.auth_fail_delay=1s",))
    try:
        run(srv)
    except Exception:
        srv.dump_log()
        raise
    finally:
        srv.stop()
    print("all passed")


def alive(c, tag="z"):
    r = c.cmd(tag, "NOOP")
    return r[-1].startswith(tag + " OK")


def run(srv):
    c = Raw(srv.port)
    check(c.greeting.startswith("* OK") and "AUTH=PLAIN" in c.greeting,
          "trusted plaintext client may authenticate")
    # wrong state
    check(c.cmd("w1", "FETCH 1 FLAGS")[-1].startswith("w1 BAD"), "FETCH before login: BAD")
    check(c.cmd("w2", "SELECT INBOX")[-1].startswith("w2 BAD"), "SELECT before login: BAD")
    check(c.cmd("w3", "FOO")[-1].startswith("w3 BAD"), "unknown command: BAD")
    # synchronising literal for LOGIN
    c.send("l1 LOGIN {%d}\r\n" % len(USER))
    check(c.line().startswith("+"), "continuation for a synchronising literal")
    c.send(USER + " {%d+}\r\n%s\r\n" % (len(PASSWORD), PASSWORD))
    check(c.until_tagged("l1")[-1].startswith("l1 OK"), "LOGIN with literals (sync and LITERAL+)")
    check(c.cmd("w4", "LOGIN a b")[-1].startswith("w4 BAD"), "LOGIN when logged in: BAD")
    check(c.cmd("w5", "STARTTLS")[-1].startswith("w5 BAD"), "STARTTLS after login: BAD")
    check(c.cmd("w6", "FETCH 1 FLAGS")[-1].startswith("w6 BAD"), "FETCH without SELECT: BAD")
    check(c.cmd("w7", "EXPUNGE")[-1].startswith("w7 BAD"), "EXPUNGE without SELECT: BAD")

    # a literal announcing 4 GB
    r = c.cmd("b1", "APPEND INBOX {4294967296}")
    check(r[-1].startswith("b1 NO") and "TOOBIG" in r[-1], "APPEND {4294967296}: NO [TOOBIG]")
    check(alive(c, "z1"), "connection usable after the refused literal")
    r = c.cmd("b2", "LOGIN {99999999999999999999999}")
    check(r[-1].startswith("b2 BAD"), "absurd literal size: BAD")
    check(alive(c, "z2"), "still usable")

    # deep parentheses
    r = c.cmd("b3", "SELECT INBOX")
    check(r[-1].startswith("b3 OK"), "SELECT INBOX")
    r = c.cmd("b4", "SEARCH " + "(" * 5000 + "ALL" + ")" * 5000)
    check(r[-1].startswith("b4 BAD"), "5000 nested parentheses: BAD")
    r = c.cmd("b5", "FETCH 1:* " + "(" * 100)
    check(r[-1].startswith("b5 BAD"), "unbalanced parentheses: BAD")
    check(alive(c, "z3"), "still usable")

    # a 100 KB line
    r = c.cmd("b6", "NOOP " + "x" * 100 * 1024)
    check(r[-1].startswith("b6 BAD"), "100 KB line: BAD")
    check(alive(c, "z4"), "still usable after the long line")
    r = c.cmd("b6b", "SEARCH " + " ".join(["ALL"] * 20000))
    check(r[-1].startswith("b6b BAD"), "20000 search keys: BAD")

    # invalid mailbox names
    r = c.cmd("b7", "SELECT &Jjo")
    check(r[-1].startswith("b7 BAD"), "invalid modified UTF-7: BAD")
    c.send(b"b8 CREATE \"\xff\xfe\xc3\"\r\n")
    r = c.until_tagged("b8")
    check(r[-1].startswith("b8 BAD") or r[-1].startswith("b8 NO"), "invalid UTF-8 name: refused")
    r = c.cmd("b9", "ENABLE UTF8=ACCEPT")
    check("ENABLED UTF8=ACCEPT" in r[0], "ENABLE UTF8=ACCEPT")
    c.send(b"b10 CREATE \"\xc3\x28\"\r\n")
    r = c.until_tagged("b10")
    check(r[-1].startswith("b10 BAD"), "invalid UTF-8 with UTF8=ACCEPT: BAD")
    c.send("b11 CREATE \"Văn bản đến\"\r\n".encode())
    check(c.until_tagged("b11")[-1].startswith("b11 OK"), "UTF-8 name with UTF8=ACCEPT")
    r = c.cmd("b12", 'LIST "" "V*"')
    check(any("Văn bản đến" in l for l in r), "LIST returns UTF-8 after UTF8=ACCEPT")

    # bad syntax of all kinds
    for i, bad in enumerate(["FETCH", "FETCH 0 FLAGS", "FETCH 1:x FLAGS", "FETCH 1 (FLAGS",
                             "STORE 1 +FLAGS (\\Bogus)", "FETCH 1 BODY[1.2.x]",
                             "SEARCH UNKNOWNKEY", "SEARCH BEFORE 32-Jan-2020",
                             "UID NOOP", "COPY 1", 'LIST "" "*" RETURN (BOGUS)',
                             "STATUS INBOX (BOGUS)", "SELECT INBOX (QRESYNC (1 2))"]):
        tag = "s%d" % i
        r = c.cmd(tag, bad)
        check(r[-1].startswith(tag + " BAD") or r[-1].startswith(tag + " NO"),
              "bad syntax %r: %s" % (bad, r[-1].split(" ")[1]))
    c.send(b"n1 NOOP\x00\x01\x02\r\n")
    check(c.until_tagged("n1")[-1].startswith("n1 BAD"), "control bytes: BAD")

    # pipelining: replies in order
    c.send("p1 NOOP\r\np2 CAPABILITY\r\np3 NOOP\r\n")
    lines = c.until_tagged("p3")
    tags = [l.split(" ")[0] for l in lines if not l.startswith("*")]
    check(tags == ["p1", "p2", "p3"], "pipelined commands answered in order")
    check(alive(c, "z5"), "still usable after all of it")
    c.close()

    # a non-synchronising literal too large cannot be skipped: BYE
    c = Raw(srv.port)
    c.cmd("l", "LOGIN %s %s" % (USER, PASSWORD))
    c.send("x1 APPEND INBOX {4294967296+}\r\nAAAA")
    l = c.line()
    check(l.startswith("* BYE"), "APPEND {4294967296+}: BYE")
    check(c.closed(), "connection closed after it")

    # too many bad commands in a row: disconnected
    c = Raw(srv.port)
    got_bye = False
    try:
        for i in range(40):
            c.send("q%d BOGUS\r\n" % i)
            l = c.line()
            if l.startswith("* BYE"):
                got_bye = True
                break
    except (EOFError, OSError):
        got_bye = True
    check(got_bye, "a client sending only garbage is disconnected")

    # failed logins: answered (after a delay), the next attempt works
    c = Raw(srv.port)
    r = c.cmd("f1", "LOGIN %s wrong-password" % USER)
    check(r[-1].startswith("f1 NO") and "AUTHENTICATIONFAILED" in r[-1],
          "wrong password: NO [AUTHENTICATIONFAILED]")
    c.send("f2 NOOP\r\n")  # pipelined behind the delayed reply
    check(c.until_tagged("f2")[-1].startswith("f2 OK"), "command after the delayed reply")
    check(c.cmd("f3", "LOGIN %s %s" % (USER, PASSWORD))[-1].startswith("f3 OK"),
          "right password after a failure")
    c.close()
    c = Raw(srv.port)
    c.send("f4 LOGIN %s wrong-password\r\n" % USER)
    c.close()  # gone while the reply is delayed

    # before login a command is bounded to a few lines: a pile of small
    # synchronising literals is refused, not buffered up to the APPENDLIMIT
    c = Raw(srv.port)
    c.send("p1 LOGIN {60000}\r\n")
    reply = c.line()
    for _ in range(12):
        if not reply.startswith("+"):
            break
        c.send("u" * 60000 + " {60000}\r\n")
        reply = c.line()
    check(reply.startswith("p1 NO") and "TOOBIG" in reply,
          "pre-login literals piled up without bound: %r" % reply)
    check(alive(c, "p2"), "usable after the refused pre-login command")
    c.close()

    # the server still serves
    c = Raw(srv.port)
    check(c.cmd("f", "LOGIN %s %s" % (USER, PASSWORD))[-1].startswith("f OK"),
          "server still serves new clients")
    check(c.cmd("g", "LOGOUT")[0].startswith("* BYE"), "LOGOUT")


if __name__ == "__main__":
    main()
