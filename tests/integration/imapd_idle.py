"""Live updates across processes: two congvu-imapd daemons on one store.
A session idling on the first sees what sessions of the second do (new
mail, flag changes, expunges), with QRESYNC as VANISHED; plus CONDSTORE
and QRESYNC resynchronisation after a reconnect."""
import os
import re
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapd_common import Server, Raw, check, fail, USER, PASSWORD  # noqa: E402

MSG = b"From: a@example.com\r\nSubject: hello %d\r\n\r\nbody\r\n"


def wait_for(c, pattern, timeout=10):
    """Reads untagged lines until one matches pattern (no timing assertion:
    the timeout only bounds the test)."""
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        if b"\r\n" not in c.buf:
            r, _, _ = select.select([c.sock], [], [], max(0.0, deadline - time.time()))
            if not r:
                break
        line = c.line()
        seen.append(line)
        if re.search(pattern, line):
            return line
    fail("did not see %r; saw %r" % (pattern, seen))


def append(c, tag, n):
    data = MSG % n
    c.send("%s APPEND INBOX {%d+}\r\n" % (tag, len(data)))
    c.send(data + b"\r\n")
    r = c.until_tagged(tag)
    if not r[-1].startswith(tag + " OK"):
        fail("APPEND: %r" % r)
    return int(re.search(r"APPENDUID \d+ (\d+)", r[-1]).group(1))


def main():
    a = Server()
    b = Server(data_dir=a.data)
    try:
        run(a, b)
    except Exception:
        a.dump_log()
        b.dump_log()
        raise
    finally:
        b.stop()
        a.stop()
    print("all passed")


def run(a, b):
    # the workers (run as nobody) watch the store's root-owned notify file:
    # IDLE is woken by inotify, not by the 200 ms fallback poll
    for srv in (a, b):
        srv.log.flush()
        with open(srv.log_path) as f:
            check("event=notify_unavailable" not in f.read(),
                  "workers watch the store's notify file (inotify)")
    writer = Raw(b.port)
    writer.cmd("l", "LOGIN %s %s" % (USER, PASSWORD))
    uid1 = append(writer, "w0", 0)
    writer.cmd("s", "SELECT INBOX")

    idler = Raw(a.port)
    idler.cmd("l", "LOGIN %s %s" % (USER, PASSWORD))
    r = idler.cmd("s", "SELECT INBOX")
    check("* 1 EXISTS" in r, "idler sees the first message")
    idler.send("i1 IDLE\r\n")
    check(idler.line().startswith("+"), "IDLE continuation")

    append(writer, "w1", 1)
    wait_for(idler, r"^\* 2 EXISTS")
    check(True, "new mail from another process shows up in IDLE")
    writer.cmd("w2", "STORE 1 +FLAGS (\\Flagged)")
    line = wait_for(idler, r"^\* 1 FETCH")
    check("\\Flagged" in line, "flag change from another process: FETCH FLAGS")
    writer.cmd("w3", "STORE 2 +FLAGS (\\Deleted)")
    writer.cmd("w4", "EXPUNGE")
    wait_for(idler, r"^\* 2 EXPUNGE")
    check(True, "expunge from another process: EXPUNGE")
    idler.send("DONE\r\n")
    check(idler.until_tagged("i1")[-1].startswith("i1 OK"), "IDLE ends with DONE")

    # CONDSTORE
    r = idler.cmd("c1", "FETCH 1 (FLAGS MODSEQ)")
    m = re.search(r"MODSEQ \((\d+)\)", r[0])
    check(m is not None, "FETCH MODSEQ")
    modseq = int(m.group(1))
    r = idler.cmd("c2", "STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % (modseq - 1))
    check("MODIFIED" in r[-1], "STORE UNCHANGEDSINCE older: [MODIFIED]")
    r = idler.cmd("c3", "STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % modseq)
    check(r[-1].startswith("c3 OK") and "MODIFIED" not in r[-1] and "\\Seen" in r[0],
          "STORE UNCHANGEDSINCE current: done")
    r = idler.cmd("c4", "FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % modseq)
    check(len([l for l in r if l.startswith("* ") and "FETCH" in l]) == 1,
          "FETCH CHANGEDSINCE: %r" % r)

    # QRESYNC: the idler reconnects and asks what changed
    r = idler.cmd("q0", "STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)")
    validity = int(re.search(r"UIDVALIDITY (\d+)", r[0]).group(1))
    hms = int(re.search(r"HIGHESTMODSEQ (\d+)", r[0]).group(1))
    idler.cmd("q1", "LOGOUT")
    uid3 = append(writer, "w5", 3)
    writer.cmd("w6", "STORE 1 -FLAGS (\\Flagged)")
    writer.cmd("w7", "UID STORE %d +FLAGS (\\Deleted)" % uid3)
    writer.cmd("w8", "UID EXPUNGE %d" % uid3)
    q = Raw(a.port)
    q.cmd("l", "LOGIN %s %s" % (USER, PASSWORD))
    r = q.cmd("e", "ENABLE QRESYNC")
    check("ENABLED" in r[0] and "QRESYNC" in r[0], "ENABLE QRESYNC")
    r = q.cmd("s", "SELECT INBOX (QRESYNC (%d %d 1:%d))" % (validity, hms, uid3))
    check(any(l.startswith("* VANISHED (EARLIER)") and str(uid3) in l for l in r),
          "SELECT QRESYNC: VANISHED (EARLIER) for the expunged UID")
    check(any("FETCH" in l and "UID %d" % uid1 in l for l in r),
          "SELECT QRESYNC: FETCH for the changed message")
    q.send("i2 IDLE\r\n")
    q.line()
    writer.cmd("w9", "STORE 1 +FLAGS (\\Deleted)")
    writer.cmd("w10", "EXPUNGE")
    line = wait_for(q, r"^\* VANISHED ")
    check(str(uid1) in line, "IDLE with QRESYNC: VANISHED")
    q.send("DONE\r\n")
    q.until_tagged("i2")
    q.close()
    writer.close()


if __name__ == "__main__":
    main()
