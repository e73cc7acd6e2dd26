"""mbsync (isync) against congvu-imapd over implicit TLS: a 200-message
mailbox synchronised both ways (new mail on each side, flags on each side,
deletions on each side), then a sync that finds nothing to do."""
import imaplib
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapd_common import Server, check, fail, USER, PASSWORD  # noqa: E402

N = 200


def message(i, side="server"):
    return ("From: Sender %d <s%d@example.com>\r\n"
            "To: demo@lamdong.gov.vn\r\n"
            "Subject: =?utf-8?q?Th=C6=B0_s=E1=BB=91_%d?= (%s)\r\n"
            "Date: Tue, 1 Feb 2022 10:%02d:00 +0700\r\n"
            "Message-ID: <%s-%d@example.com>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "Body of message %d.\r\n" % (i, i, i, side, i % 60, side, i, i)).encode()


def maildir_files(path):
    out = []
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in os.listdir(d)]
    return out


def mbsync(rc):
    p = subprocess.run(["mbsync", "-c", rc, "-a"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:])
        fail("mbsync exited %d" % p.returncode)
    return p


def main():
    if shutil.which("mbsync") is None:
        print("SKIP: mbsync (Debian package isync) is not installed")
        sys.exit(77)
    srv = Server()
    try:
        run(srv)
    except Exception:
        srv.dump_log()
        raise
    finally:
        srv.stop()
    print("all passed")


def run(srv):
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    M.login(USER, PASSWORD)
    for i in range(N):
        typ, _ = M.append("INBOX", "(\\Seen)" if i % 3 == 0 else None, None, message(i))
        if typ != "OK":
            fail("APPEND %d" % i)
    M.logout()

    local = os.path.join(srv.dir, "mail")
    os.mkdir(local)
    rc = os.path.join(srv.dir, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("""IMAPAccount congvu
Host localhost
Port %d
User %s
Pass %s
SSLType IMAPS
CertificateFile %s
AuthMechs PLAIN

IMAPStore remote
Account congvu

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel ch
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
""" % (srv.tls_port, USER, PASSWORD, srv.cert, local, local))

    # 1. first sync: everything comes down
    mbsync(rc)
    inbox = os.path.join(local, "INBOX")
    files = maildir_files(inbox)
    check(len(files) == N, "first sync: %d messages in the Maildir" % len(files))
    seen = [f for f in files if re.search(r":2,[A-Z]*S", f)]
    check(len(seen) == len([i for i in range(N) if i % 3 == 0]), "\\Seen flags came down")

    # 2. changes on both sides
    files.sort()
    flagged_local = []
    for f in files[:10]:
        base = f.split(":2,")[0]
        flags = f.split(":2,")[1] if ":2," in f else ""
        new = os.path.join(os.path.dirname(os.path.dirname(f)), "cur",
                           os.path.basename(base) + ":2," + "".join(sorted(set(flags + "F"))))
        os.rename(f, new)
        flagged_local.append(new)
    for f in files[10:15]:
        os.unlink(f)  # deleted locally
    for i in range(3):
        name = os.path.join(inbox, "new", "local-%d.host" % i)
        with open(name, "wb") as fh:
            fh.write(message(1000 + i, "local").replace(b"\r\n", b"\n"))
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    M.login(USER, PASSWORD)
    for i in range(4):
        M.append("INBOX", None, None, message(2000 + i))
    M.select("INBOX")
    typ, data = M.uid("search", None, "SUBJECT", '"(server)"')
    server_uids = data[0].split()
    # answered on the server for one message, two deleted on the server
    M.uid("store", server_uids[-20], "+FLAGS", "(\\Answered)")
    M.uid("store", server_uids[-30] + b"," + server_uids[-31], "+FLAGS", "(\\Deleted)")
    M.expunge()
    M.logout()

    # 3. second sync
    mbsync(rc)
    files = maildir_files(inbox)
    expect = N - 5 - 2 + 3 + 4
    check(len(files) == expect, "second sync: %d local messages (expected %d)" % (len(files), expect))
    M = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=srv.tls_context())
    M.login(USER, PASSWORD)
    typ, data = M.select("INBOX")
    check(int(data[0]) == expect, "server has %s messages (expected %d)" % (data[0], expect))
    typ, data = M.search(None, "FLAGGED")
    check(len(data[0].split()) == 10, "local \\Flagged went up to the server")
    typ, data = M.search(None, "SUBJECT", '"(local)"')
    check(len(data[0].split()) == 3, "local new messages were uploaded")
    typ, data = M.search(None, "ANSWERED")
    check(len(data[0].split()) == 1, "server \\Answered is on the server")
    answered_local = [f for f in files if re.search(r":2,[A-Z]*R", f)]
    check(len(answered_local) == 1, "server \\Answered came down")
    typ, data = M.search(None, "DELETED")
    check(data[0] == b"", "no \\Deleted left on the server")
    M.logout()

    # 4. nothing left to do
    p = mbsync(rc)
    files2 = maildir_files(inbox)
    check(sorted(files2) == sorted(files), "third sync changes nothing")


if __name__ == "__main__":
    main()
