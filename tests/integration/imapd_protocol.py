"""congvu-imapd extensions in scripted conversations: LIST-EXTENDED,
LIST-STATUS, SPECIAL-USE, CHILDREN, NAMESPACE, ID, ENABLE IMAP4rev2 (ESEARCH,
no RECENT, UTF-8 names), UNSELECT/CLOSE, EXAMINE read-only, literal8 APPEND,
UIDPLUS, MOVE with COPYUID before the expunges, STATUS items, BINARY."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapd_common import Server, Raw, check, USER, PASSWORD  # noqa: E402


def main():
    srv = Server()
    try:
        run(srv)
    except Exception:
        srv.dump_log()
        raise
    finally:
        srv.stop()
    print("all passed")


def ok(r, tag):
    return r[-1].startswith(tag + " OK")


def append(c, tag, data, extra=""):
    c.send(("%s APPEND INBOX %s{%d+}\r\n" % (tag, extra, len(data))).encode() + data + b"\r\n")
    return c.until_tagged(tag)


def run(srv):
    c = Raw(srv.port)
    c.cmd("l", "LOGIN %s %s" % (USER, PASSWORD))
    r = c.cmd("n", "NAMESPACE")
    check(r[0] == '* NAMESPACE (("" "/")) NIL NIL', "NAMESPACE")
    r = c.cmd("i", 'ID ("name" "test")')
    check(r[0].startswith('* ID ("name" "congvu"'), "ID")

    # LIST-EXTENDED, SPECIAL-USE, CHILDREN, LIST-STATUS
    check(ok(c.cmd("c1", "CREATE Projects/2024/Q1"), "c1"), "CREATE nested")
    r = c.cmd("x1", 'LIST "" "%"')
    check(any("(\\HasChildren) \"/\" \"Projects\"" in l for l in r), "CHILDREN: \\HasChildren")
    check(not any("Projects/2024" in l for l in r), "'%' does not cross the separator")
    r = c.cmd("x2", 'LIST "Projects/" "*"')
    check(len([l for l in r if l.startswith("* LIST")]) == 2, "LIST with a reference")
    r = c.cmd("x3", 'LIST (SPECIAL-USE) "" "*"')
    names = sorted(re.findall(r'"/" "([^"]+)"', "\n".join(r)))
    check(names == ["Drafts", "Junk", "Sent", "Trash"], "LIST (SPECIAL-USE): %s" % names)
    r = c.cmd("x4", 'LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT SIZE) SPECIAL-USE)')
    check(any(l.startswith('* STATUS "Sent" (MESSAGES 0 UIDNEXT 1 SIZE 0)') for l in r),
          "LIST-STATUS")
    check(ok(c.cmd("s1", "SUBSCRIBE Projects/2024"), "s1"), "SUBSCRIBE")
    r = c.cmd("x5", 'LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')
    check(any("\\Subscribed" in l and '"Projects/2024"' in l for l in r), "LIST (SUBSCRIBED)")
    r = c.cmd("x6", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    check(any('"Projects"' in l and "CHILDINFO" in l for l in r), "RECURSIVEMATCH: CHILDINFO")
    r = c.cmd("x7", 'LSUB "" "*"')
    check(any('"Projects/2024"' in l for l in r), "LSUB")
    r = c.cmd("x8", 'LIST "" ""')
    check(r[0] == '* LIST (\\Noselect) "/" ""', 'LIST "" "" gives the separator')
    r = c.cmd("x9", 'LIST "" (INBOX Sent)')
    check(len([l for l in r if l.startswith("* LIST")]) == 2, "LIST with several patterns")
    r = c.cmd("c2", "CREATE Archive (USE (\\Archive))")
    r = c.cmd("x10", 'LIST "" Archive')
    check("\\Archive" in r[0], "CREATE-SPECIAL-USE")
    r = c.cmd("c3", "CREATE INBOX")
    check(r[-1].startswith("c3 NO") and "ALREADYEXISTS" in r[-1], "CREATE INBOX: NO [ALREADYEXISTS]")
    r = c.cmd("c4", "DELETE NoSuchBox")
    check(r[-1].startswith("c4 NO") and "NONEXISTENT" in r[-1], "DELETE missing: NO [NONEXISTENT]")

    # APPEND: UIDPLUS, literal8, NUL bytes
    r = append(c, "a1", b"Subject: one\r\n\r\nbody one\r\n", "(\\Seen $Work) ")
    m = re.search(r"APPENDUID (\d+) (\d+)", r[-1])
    check(ok(r, "a1") and m and m.group(2) == "1", "APPEND: APPENDUID")
    validity = m.group(1)
    r = append(c, "a2", b"Subject: two\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Transfer-Encoding: binary\r\n\r\nA\0B\r\n")
    check(r[-1].startswith("a2 NO"), "NUL in a plain literal: NO")
    bin_msg = (b"Subject: two\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\nA\0B\r\n")
    c.send(b"a3 APPEND INBOX ~{%d+}\r\n" % len(bin_msg) + bin_msg + b"\r\n")
    r = c.until_tagged("a3")
    check(ok(r, "a3"), "literal8 APPEND with NUL")
    r = append(c, "a4", b"Subject: three\r\n\r\nbody three\r\n", '"01-Jan-2021 10:00:00 +0700" ')
    check(ok(r, "a4"), "APPEND with date")

    # EXAMINE is read-only
    r = c.cmd("e1", "EXAMINE INBOX")
    check(ok(r, "e1") and "[READ-ONLY]" in r[-1], "EXAMINE: [READ-ONLY]")
    r = c.cmd("e2", "STORE 1 +FLAGS (\\Deleted)")
    check(r[-1].startswith("e2 NO"), "STORE in EXAMINE: NO")
    r = c.cmd("e3", "FETCH 3 BODY[]")
    r = c.cmd("e4", "FETCH 3 FLAGS")
    check("\\Seen" not in r[0], "FETCH BODY[] in EXAMINE does not set \\Seen")

    # SELECT, keywords, BINARY of the literal8 message
    r = c.cmd("s", "SELECT INBOX")
    check("* 3 EXISTS" in r and any("$Work" in l for l in r if l.startswith("* FLAGS")),
          "SELECT: EXISTS and keywords in FLAGS")
    check("* 0 RECENT" in r and any("[UNSEEN 2]" in l for l in r), "IMAP4rev1 SELECT: RECENT, UNSEEN")
    c.send("b1 FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n")
    data = b""
    while b"\r\nb1 " not in data:
        data += c.sock.recv(65536)
    data = c.buf + data
    c.buf = data[data.index(b"\r\nb1 ") + 2:]
    c.line()
    check(b"BINARY[1] ~{5}\r\nA\x00B\r\n" in data, "BINARY[] of a binary part: literal8")
    check(b"BINARY.SIZE[1] 5" in data, "BINARY.SIZE")

    # MOVE: COPYUID before the expunges
    r = c.cmd("m1", "UID MOVE 1 Archive")
    check(r[0].startswith("* OK [COPYUID ") and r[1] == "* 1 EXPUNGE" and ok(r, "m1"),
          "MOVE: COPYUID, then EXPUNGE")
    r = c.cmd("m2", "STATUS Archive (MESSAGES UIDVALIDITY UIDNEXT UNSEEN DELETED SIZE HIGHESTMODSEQ)")
    check("MESSAGES 1" in r[0] and "UNSEEN 0" in r[0] and "DELETED 0" in r[0], "STATUS items")
    r = c.cmd("m3", "UID COPY 1:* Trash")
    check("[COPYUID" in r[-1], "UID COPY: COPYUID")
    r = c.cmd("m4", "COPY 1 NoSuchBox")
    check(r[-1].startswith("m4 NO") and "TRYCREATE" in r[-1], "COPY to a missing mailbox: [TRYCREATE]")

    # UID EXPUNGE expunges only the given UIDs
    c.cmd("d1", "STORE 1:2 +FLAGS (\\Deleted)")
    r = c.cmd("d2", "UID EXPUNGE 2")
    check("* 1 EXPUNGE" in r and len([l for l in r if "EXPUNGE" in l and l.startswith("*")]) == 1,
          "UID EXPUNGE: only the given UID")
    r = c.cmd("d3", "CLOSE")
    check(ok(r, "d3"), "CLOSE")
    r = c.cmd("d4", "STATUS INBOX (MESSAGES)")
    check("MESSAGES 0" in r[0], "CLOSE expunged the \\Deleted message")
    r = c.cmd("d5", "FETCH 1 FLAGS")
    check(r[-1].startswith("d5 BAD"), "after CLOSE: not selected")

    # IMAP4rev2
    r = c.cmd("v1", "ENABLE IMAP4rev2")
    check("* ENABLED IMAP4rev2" in r, "ENABLE IMAP4rev2")
    r = c.cmd("v2", "SELECT Trash")
    check(not any("RECENT" in l for l in r) and any(l.startswith('* LIST () "/" "Trash"') for l in r),
          "IMAP4rev2 SELECT: no RECENT, a LIST response")
    r = c.cmd("v3", "SEARCH ALL")
    check(r[0].startswith('* ESEARCH (TAG "v3") ALL '), "IMAP4rev2 SEARCH answers ESEARCH")
    r = c.cmd("v4", "UID SEARCH RETURN (COUNT) ALL")
    check(r[0].startswith('* ESEARCH (TAG "v4") UID COUNT '), "UID SEARCH RETURN (COUNT)")
    c.send("v5 CREATE \"Thư đến\"\r\n".encode())
    check(ok(c.until_tagged("v5"), "v5"), "UTF-8 names after IMAP4rev2")
    r = c.cmd("v6", "UNSELECT")
    check(ok(r, "v6"), "UNSELECT")
    r = c.cmd("v7", "LOGOUT")
    check(r[0].startswith("* BYE"), "LOGOUT")
    c.close()


if __name__ == "__main__":
    main()
