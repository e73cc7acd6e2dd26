#!/usr/bin/env python3
"""Compression that yields under load: congvu-smtpd stores a message
uncompressed when the preparing threads are behind (smtpd.compress_backlog)
and its compacting thread compresses those bytes once deliveries pause.

1. Mail stored with global.store_compression = none is compressed by the
   pass the delivery process makes at start once zstd is configured, and
   reads back byte for byte, also when the daemon is SIGKILLed in the
   middle of that pass and started again.
2. A burst from 40 parallel sessions with compress_backlog = 1: every
   message gets its 250, and soon after the burst no stored chunk is left
   uncompressed, every message intact.
3. Messages sent one at a time are stored uncompressed at once (nothing to
   overlap compression with) by default, and compressed before the reply
   with compress_backlog = 0."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import DOMAIN, PEEK, Server, check, fail, message  # noqa: E402

RCPT = "demo@" + DOMAIN


def stats(srv):
    r = subprocess.run([PEEK, "--stats", srv.data], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "store-peek --stats: " + r.stderr)
    return json.loads(r.stdout)


def stored_raw(srv):
    """What the delivery process's last stop line says it stored uncompressed."""
    lines = [line for line in srv.log().splitlines() if "stored_uncompressed=" in line]
    check(lines, "no stop line of the delivery process")
    return int(lines[-1].split("stored_uncompressed=")[1].split()[0])


def body(i):
    # about 12 KB of mail-like text, different for each message
    words = ("quyết định về việc phê duyệt kế hoạch năm Ủy ban nhân dân tỉnh "
             "Lâm Đồng công văn số gửi các sở ban ngành report budget meeting").split()
    lines = []
    for n in range(160):
        lines.append(" ".join(words[(i * 7 + n * 3 + k) % len(words)] for k in range(12)))
    return "message %d\r\n%s\r\n" % (i, "\r\n".join(lines))


def send(srv, subjects_bodies):
    c = srv.smtp()
    for subject, text in subjects_bodies:
        c.sendmail("sender@example.org", [RCPT], message(subject, text).encode())
    c.quit()


def check_intact(srv, expected):
    stored = {}
    for m in srv.messages(RCPT):
        for subject in expected:
            if ("Subject: %s\r\n" % subject).encode() in m["data"]:
                stored[subject] = m["data"]
    check(len(stored) == len(expected),
          "%d of %d messages found in the store" % (len(stored), len(expected)))
    for subject, text in expected.items():
        check(text.encode() in stored[subject], "message %s changed in the store" % subject)


def main():
    srv = Server(settings={"global.store_compression": "none"}, services=("smtp",))
    try:
        srv.add_account(RCPT)
        srv.start()
        expected = {"raw-%d" % i: body(i) for i in range(600)}
        items = list(expected.items())
        senders = [threading.Thread(target=send, args=(srv, items[k::4])) for k in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        srv.stop()
        check(stats(srv)["uncompressed_chunks"] == 600, "stored uncompressed: %s" % stats(srv))

        # 1. zstd configured: the pass at start compresses what is there; a
        # SIGKILL in the middle of it loses nothing
        srv.settings["global.store_compression"] = "zstd"
        srv.settings["smtpd.compress_backlog"] = "1"
        srv.write_config()
        srv.start()
        end = time.time() + 30
        while stats(srv)["uncompressed_chunks"] == 600 and time.time() < end:
            pass
        srv.stop(signal.SIGKILL)
        left = stats(srv)["uncompressed_chunks"]
        print("SIGKILL during the pass: %d of 600 chunks were still uncompressed" % left)
        check_intact(srv, expected)
        srv.start()
        end = time.time() + 60
        while stats(srv)["uncompressed_chunks"] > 0 and time.time() < end:
            time.sleep(0.2)
        check(stats(srv)["uncompressed_chunks"] == 0, "after the pass: %s" % stats(srv))
        if not srv.wait_log("event=compacted chunks=", timeout=10) and left > 0:
            fail("no compaction logged:\n" + srv.log()[-3000:])
        check_intact(srv, expected)

        # 2. a burst: whatever was stored uncompressed is compacted after it
        burst = {}
        jobs = []
        for s in range(40):
            part = [("burst-%d-%d" % (s, i), body(1000 + s * 10 + i)) for i in range(10)]
            burst.update(part)
            jobs.append(threading.Thread(target=send, args=(srv, part)))
        for t in jobs:
            t.start()
        for t in jobs:
            t.join()
        end = time.time() + 60
        while stats(srv)["uncompressed_chunks"] > 0 and time.time() < end:
            time.sleep(0.2)
        check(stats(srv)["uncompressed_chunks"] == 0, "left uncompressed: %s" % stats(srv))
        check(stats(srv)["messages"] == 600 + 400, "messages: %s" % stats(srv))
        check_intact(srv, burst)
        check_intact(srv, expected)
        srv.stop()
        print("burst of 400 from 40 sessions: %d stored uncompressed, then compacted"
              % stored_raw(srv))

        # 3. one at a time
        for backlog, want in (("0", 0), ("2", 5)):
            srv.settings["smtpd.compress_backlog"] = backlog
            srv.write_config()
            srv.start()
            lone = {"lone-%s-%d" % (backlog, i): body(5000 + i) for i in range(5)}
            send(srv, list(lone.items()))
            if backlog == "0":
                check(stats(srv)["uncompressed_chunks"] == 0,
                      "compress_backlog = 0 stored uncompressed: %s" % stats(srv))
            srv.stop()
            check(stored_raw(srv) == want, "compress_backlog = %s: %d stored uncompressed, %d "
                  "expected" % (backlog, stored_raw(srv), want))
            check_intact(srv, lone)
    finally:
        srv.cleanup()
    print("PASS")


if __name__ == "__main__":
    main()
