"""congvu-imapd with real clients over TLS: Python imaplib (STARTTLS and
implicit TLS) and curl; LOGINDISABLED before TLS for untrusted clients;
mailbox commands, APPEND/FETCH/STORE/COPY/MOVE/EXPUNGE, SEARCH with
Vietnamese text, QUOTA and NO [OVERQUOTA]."""
import imaplib
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapd_common import Server, Raw, check, fail, USER, PASSWORD  # noqa: E402

MSG_VI = ("From: =?utf-8?b?Tmd1eeG7hW4gVsSDbiBBbg==?= <an@lamdong.gov.vn>\r\n"
          "To: demo@lamdong.gov.vn\r\n"
          "Subject: =?utf-8?q?Quy=E1=BA=BFt_=C4=91=E1=BB=8Bnh_s=E1=BB=91_12?=\r\n"
          "Date: Tue, 1 Feb 2022 10:00:00 +0700\r\n"
          "Message-ID: <m1@lamdong.gov.vn>\r\n"
          "MIME-Version: 1.0\r\n"
          "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
          "\r\n"
          "--b1\r\n"
          "Content-Type: text/plain; charset=utf-8\r\n"
          "Content-Transfer-Encoding: base64\r\n"
          "\r\n"
          "VsSDbiBi4bqjbiB24buBIHZp4buHYyB0aeG6v3Agbmjhuq1uIGjhu5Mgc8ahLg==\r\n"
          "--b1\r\n"
          "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
          "Content-Transfer-Encoding: base64\r\n"
          "\r\n"
          "AAECAw==\r\n"
          "--b1--\r\n").encode()

MSG_PLAIN = (b"From: Bob <bob@example.com>\r\nTo: demo@lamdong.gov.vn\r\n"
             b"Subject: weekly report\r\nDate: Wed, 2 Feb 2022 08:00:00 +0000\r\n\r\n"
             b"Numbers attached.\r\n")


def main():
    # localhost is not trusted here: login needs TLS
    srv = Server(trusted="192.0.2.0/24",
                 accounts=((USER, PASSWORD, None), ("small@lamdong.gov.vn", "pw-small", "2K")))
    try:
        run(srv)
    except Exception:
        srv.dump_log()
        raise
    finally:
        srv.stop()
    print("all passed")


def run(srv):
    # ---- before TLS ----
    raw = Raw(srv.port)
    check("LOGINDISABLED" in raw.greeting and "STARTTLS" in raw.greeting,
          "plaintext greeting announces STARTTLS and LOGINDISABLED")
    r = raw.cmd("a1", "LOGIN %s %s" % (USER, PASSWORD))
    check(r[-1].startswith("a1 NO"), "LOGIN refused before TLS")
    r = raw.cmd("a2", "AUTHENTICATE PLAIN AGRlbW9AbGFtZG9uZy5nb3Yudm4AeA==")
    check(r[-1].startswith("a2 NO"), "AUTHENTICATE refused before TLS")
    r = raw.cmd("a3", "SELECT INBOX")
    check(r[-1].startswith("a3 BAD"), "SELECT before login is BAD")
    raw.close()

    # STARTTLS: commands pipelined behind it in clear are discarded
    raw = Raw(srv.port)
    raw.send("t1 STARTTLS\r\nt2 LOGIN %s %s\r\n" % (USER, PASSWORD))
    check(raw.line().startswith("t1 OK"), "STARTTLS")
    raw.sock = srv.tls_context().wrap_socket(raw.sock, server_hostname="localhost")
    raw.buf = b""
    r = raw.cmd("t3", "NOOP")
    check(r == ["t3 OK NOOP completed"], "input pipelined after STARTTLS was discarded")
    r = raw.cmd("t4", "STARTTLS")
    check(r[-1].startswith("t4 BAD"), "STARTTLS twice: BAD")
    raw.close()

    # ---- STARTTLS with imaplib ----
    M = imaplib.IMAP4("127.0.0.1", srv.port)
    M.starttls(ssl_context=srv.tls_context())
    typ, caps = M.capability()
    check(b"AUTH=PLAIN" in caps[0] and b"LOGINDISABLED" not in caps[0],
          "after STARTTLS: AUTH=PLAIN, no LOGINDISABLED")
    typ, _ = M.login(USER, PASSWORD)
    check(typ == "OK", "LOGIN after STARTTLS")
    typ, data = M.list()
    names = [d.decode() for d in data]
    check(any('"INBOX"' in n for n in names) and any("\\Sent" in n for n in names),
          "LIST shows INBOX and SPECIAL-USE \\Sent")
    M.select("INBOX")
    typ, data = M.append("INBOX", "(\\Flagged)", None, MSG_VI)
    check(typ == "OK" and b"APPENDUID" in data[0], "APPEND with APPENDUID")
    typ, data = M.append("INBOX", None, '"02-Feb-2022 08:00:00 +0000"', MSG_PLAIN)
    check(typ == "OK", "APPEND with internal date")
    typ, data = M.select("INBOX")
    check(data[0] == b"2", "SELECT sees 2 messages")

    typ, data = M.fetch("1:2", "(UID RFC822.SIZE INTERNALDATE)")
    check(typ == "OK" and b'02-Feb-2022 08:00:00 +0000' in data[1], "FETCH INTERNALDATE")
    size = len(MSG_VI)
    check(b"RFC822.SIZE %d" % size in data[0], "RFC822.SIZE is the stored size")
    typ, data = M.fetch("1", "(BODYSTRUCTURE)")
    bs = data[0]
    check(b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "BASE64"' in bs.upper().replace(b'"UTF-8"', b'"utf-8"')
          or b'"BASE64"' in bs.upper(), "BODYSTRUCTURE of the multipart")
    check(b'"MIXED"' in bs.upper(), "BODYSTRUCTURE subtype MIXED")
    typ, data = M.fetch("1", "(BODY.PEEK[1.MIME] BODY.PEEK[2] BINARY.PEEK[2] BINARY.SIZE[2])")
    parts = [x for x in data if isinstance(x, tuple)]
    check(parts[1][1] == b"AAECAw==", "BODY[2] is the encoded part")
    check(parts[2][1] == b"\x00\x01\x02\x03", "BINARY[2] decodes base64 (literal8)")
    check(b"BINARY.SIZE[2] 4" in data[-1] if isinstance(data[-1], bytes) else True,
          "BINARY.SIZE[2]")
    typ, data = M.fetch("1", "(BODY.PEEK[]<0.10>)")
    check(data[0][1] == MSG_VI[:10], "partial BODY[]<0.10>")
    typ, data = M.fetch("1", "(BODY.PEEK[TEXT])")
    check(data[0][1] == MSG_VI[MSG_VI.index(b"\r\n\r\n") + 4:], "BODY[TEXT]")
    typ, data = M.fetch("1", "(FLAGS)")
    check(b"\\Seen" not in data[0], "PEEK does not set \\Seen")
    typ, data = M.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
    check(b"FLAGS (" in b"".join(x if isinstance(x, bytes) else x[0] for x in data) and
          b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data),
          "BODY[...] sets \\Seen and reports FLAGS")

    # a large message is streamed (a literal sent in slices)
    big = (b"Subject: big one\r\nContent-Type: text/plain\r\n\r\n" +
           b"".join(b"line %07d of a large message\r\n" % i for i in range(60000)))
    typ, data = M.append("Sent", None, None, big)
    check(typ == "OK", "APPEND of a %d KB message" % (len(big) // 1024))
    M.select("Sent")
    typ, data = M.fetch("1", "(UID BODY.PEEK[])")
    check(data[0][1] == big and b"UID 1" in data[0][0], "streamed BODY[] is byte-exact")
    M.append("Sent", None, None, big[:-20] + b"tail\r\n")
    typ, data = M.uid("fetch", "1:*", "(BODY.PEEK[])")
    got = [x for x in data if isinstance(x, tuple)]
    check(len(got) == 2 and got[0][1] == big and got[1][1].endswith(b"tail\r\n") and
          b"UID 2" in (data[-1] if isinstance(data[-1], bytes) else b"") + got[1][0] +
          b"".join(x for x in data if isinstance(x, bytes)),
          "two streamed messages in one UID FETCH, UID after the literal")
    typ, data = M.fetch("1", "(BODY[]<1000.20>)")
    check(data[0][1] == big[1000:1020], "partial of a large message")
    M.select("INBOX")

    # SEARCH with Vietnamese folding
    def search(*crit, charset=None):
        typ, data = M.search(charset, *crit)
        if typ != "OK":
            fail("SEARCH %r: %r" % (crit, data))
        return data[0].split()

    check(search("SUBJECT", '"quyet dinh"') == [b"1"], "'quyet dinh' finds 'Quyết định'")
    check(search("SUBJECT", "\"ĐỊNH\"".encode(), charset="UTF-8") == [b"1"], "'ĐỊNH' finds 'định'")
    check(search("SUBJECT", "\"đinh\"".encode(), charset="UTF-8") == [],
          "'đinh' (other diacritics) does not find 'định'")
    check(search("BODY", '"tiep nhan"') == [b"1"], "BODY search in base64 UTF-8 text")
    check(search("FROM", '"nguyen van"') == [b"1"], "FROM search in an encoded name")
    check(search("FROM", "bob@example.com") == [b"2"], "FROM search by address")
    check(search("TEXT", "Numbers") == [b"2"], "TEXT search")
    check(search("FLAGGED") == [b"1"], "FLAGGED")
    check(search("NOT", "FLAGGED") == [b"2"], "NOT FLAGGED")
    check(search("OR", "FLAGGED", "SUBJECT", "weekly") == [b"1", b"2"], "OR")
    check(search("SENTSINCE", "2-Feb-2022") == [b"2"], "SENTSINCE")
    check(search("ON", "2-Feb-2022") == [b"2"], "ON (internal date)")
    check(search("LARGER", "400") == [b"1"], "LARGER")
    check(search("UID", "1:*", "HEADER", "Message-ID", "m1@") == [b"1"], "HEADER")
    typ, data = M._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
    typ, data = M._untagged_response(typ, data, "ESEARCH")
    check(data and b"MIN 1 MAX 2 COUNT 2" in data[0], "ESEARCH RETURN (MIN MAX COUNT)")
    typ, data = M._simple_command("SEARCH", "CHARSET", "X-NO-SUCH", "ALL")
    check(typ == "NO" and b"BADCHARSET" in data[0], "unknown CHARSET: NO [BADCHARSET]")

    # STORE, COPY, MOVE, EXPUNGE
    typ, data = M.store("2", "+FLAGS", "(\\Deleted $Urgent)")
    check(b"$Urgent" in data[0] and b"\\Deleted" in data[0], "STORE +FLAGS with a keyword")
    typ, data = M.copy("1", "Trash")
    check(typ == "OK" and b"COPYUID" in data[0], "COPY with COPYUID")
    typ, data = M.create('"L&AbA-u tr&Hu8-/2022"')
    check(typ == "OK", "CREATE a modified UTF-7 name")
    typ, data = M.list('""', "*")
    listed = b"\n".join(data)
    check(b'"L&AbA-u tr&Hu8-"' in listed and b'"L&AbA-u tr&Hu8-/2022"' in listed,
          "CREATE with parents; LIST in modified UTF-7")
    typ, data = M._simple_command("MOVE", "1", '"L&AbA-u tr&Hu8-/2022"')
    check(typ == "OK", "MOVE into a UTF-7 named mailbox")
    typ, data = M.expunge()
    check(typ == "OK", "EXPUNGE")
    typ, data = M.select("INBOX")
    check(data[0] == b"0", "INBOX empty after MOVE and EXPUNGE")
    typ, data = M.status('"L&AbA-u tr&Hu8-/2022"', "(MESSAGES UIDNEXT UNSEEN SIZE)")
    check(b"MESSAGES 1" in data[0] and (b"SIZE %d" % size) in data[0], "STATUS with SIZE")
    typ, data = M.rename('"L&AbA-u tr&Hu8-"', "Archive2")
    check(typ == "OK", "RENAME with children")
    typ, data = M.list('""', "Archive2/*")
    check(b"Archive2/2022" in data[0], "children renamed")
    typ, data = M.rename("Archive2/2022", "Deep/Er/2022")
    check(typ == "OK", "RENAME to a name whose parents do not exist")
    typ, data = M.list('""', "Deep/*")
    names = [d.split()[-1].strip(b'"') for d in data if d]
    check(b"Deep/Er" in names and b"Deep/Er/2022" in names,
          "the new name's parents created: %r" % data)
    typ, data = M.delete("Deep/Er/2022")
    check(typ == "OK", "DELETE")
    typ, data = M.getquotaroot("INBOX")
    check(typ == "OK" and b"STORAGE" in data[1][0], "GETQUOTAROOT with STORAGE")
    M.logout()

    # ---- implicit TLS, AUTHENTICATE PLAIN with SASL-IR, quota ----
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    typ, _ = M.authenticate("PLAIN", lambda _: b"\0small@lamdong.gov.vn\0pw-small")
    check(typ == "OK", "AUTHENTICATE PLAIN over implicit TLS")
    big = b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"
    typ, data = M.append("INBOX", None, None, big)
    check(typ == "NO" and b"OVERQUOTA" in data[0], "APPEND over quota: NO [OVERQUOTA]")
    typ, data = M.select("INBOX")
    check(data[0] == b"0", "nothing stored after OVERQUOTA")
    typ, data = M.append("INBOX", None, None, b"Subject: s\r\n\r\n" + b"y" * 1200 + b"\r\n")
    check(typ == "OK", "APPEND under quota")
    typ, data = M.copy("1", "Trash")
    check(typ == "NO" and b"OVERQUOTA" in data[0], "COPY over quota: NO [OVERQUOTA]")
    typ, data = M.status("Trash", "(MESSAGES)")
    check(b"MESSAGES 0" in data[0], "COPY over quota changed nothing")
    M.select("INBOX")
    M.store("1", "+FLAGS", "\\Deleted")
    M.expunge()
    typ, data = M.getquota('""')
    check(b"STORAGE 0 " in data[0], "EXPUNGE frees usage at once")
    typ, data = M.append("INBOX", None, None, b"Subject: s\r\n\r\n" + b"y" * 1200 + b"\r\n")
    check(typ == "OK", "APPEND fits again after EXPUNGE")
    M.logout()

    # ---- wrong password ----
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    try:
        M.login(USER, "wrong")
        fail("wrong password accepted")
    except imaplib.IMAP4.error as e:
        check("AUTHENTICATIONFAILED" in str(e), "wrong password: NO [AUTHENTICATIONFAILED]")
    M.logout()

    # ---- SIGHUP: certificate reloaded, connections kept ----
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    M.login(USER, PASSWORD)
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    typ, _ = M.noop()
    check(typ == "OK", "connection survives SIGHUP")
    M.logout()
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    check(M.login(USER, PASSWORD)[0] == "OK", "new TLS connections after SIGHUP")
    M.logout()
    # the configuration file is read again: a new APPENDLIMIT for new sessions
    with open(os.path.join(srv.dir, "none.conf"), "w") as f:
        f.write("[imapd]\nappend_limit = 2K\n")
    srv.proc.send_signal(signal.SIGHUP)
    # every worker reloads on its own: poll (bounded) rather than guess a delay
    reloaded = False
    deadline = time.time() + 15
    while not reloaded and time.time() < deadline:
        time.sleep(0.2)
        M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
        M.login(USER, PASSWORD)
        reloaded = b"APPENDLIMIT=2048" in M.capability()[1][0]
        M.logout()
    check(reloaded, "SIGHUP reloads the configuration file")
    with open(os.path.join(srv.dir, "none.conf"), "w") as f:
        f.write("[imapd]\nno_such_key = 1\n")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    M.login(USER, PASSWORD)
    check(b"APPENDLIMIT=2048" in M.capability()[1][0],
          "a bad configuration on SIGHUP keeps the old one")
    M.logout()

    # ---- curl over implicit TLS ----
    url = "imaps://127.0.0.1:%d/INBOX;MAILINDEX=1" % srv.tls_port
    out = subprocess.run(["curl", "-sS", "--cacert", srv.cert, "--insecure", "-u",
                          "small@lamdong.gov.vn:pw-small", url],
                         capture_output=True, timeout=60)
    check(out.returncode == 0 and b"Subject: s" in out.stdout, "curl imaps fetches a message")
    out = subprocess.run(["curl", "-sS", "--insecure", "--ssl-reqd", "-u",
                          "%s:%s" % (USER, PASSWORD), "imap://127.0.0.1:%d/" % srv.port],
                         capture_output=True, timeout=60)
    check(out.returncode == 0 and b"INBOX" in out.stdout, "curl imap with STARTTLS lists mailboxes")


if __name__ == "__main__":
    main()
