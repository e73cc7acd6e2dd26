#!/usr/bin/env python3
"""Failed logins are counted per client IP across congvu-imapd's workers:
a client spreading wrong passwords over connections that land on different
workers (imapd.workers = 2) is counted once, not per worker. The count is
what the login_failed log lines report (fails=N) and what the growing
delay is computed from. Passwords are verified in a thread of the worker:
clients leaving in the middle are forgotten, unknown users are refused
like wrong passwords."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapd_common import Server, Raw, check, fail, USER, PASSWORD  # noqa: E402

ATTEMPTS = 16


def main():
    srv = Server(extra=("imapd.auth_fail_delay=0",))
    try:
        # Connections are handed to whichever worker wakes first; batches
        # of them are tried until two workers have each seen some.
        counts, pids, total = [], set(), 0
        for batch in range(6):
            conns = [Raw(srv.port) for _ in range(ATTEMPTS)]
            for i, c in enumerate(conns):
                tag = "a%d_%d" % (batch, i)
                r = c.cmd(tag, "LOGIN %s wrong-%d" % (USER, total + i))
                check(r[-1].startswith(tag + " NO") and "AUTHENTICATIONFAILED" in r[-1],
                      "wrong password refused")
            for c in conns:
                c.close()
            total += ATTEMPTS
            srv.log.flush()
            with open(srv.log_path) as f:
                lines = [ln for ln in f if "event=login_failed" in ln]
            check(len(lines) == total, "%d login_failed lines, %d expected" % (len(lines), total))
            pids, counts = set(), []
            for ln in lines:
                m = re.search(r"congvu-imapd\[(\d+)\].*fails=(\d+)", ln)
                check(m is not None, "log line format: " + ln)
                pids.add(m.group(1))
                counts.append(int(m.group(2)))
            if len(pids) >= 2:
                break
        print("workers that saw the attempts: %d; counts: %s" % (len(pids), counts))
        if len(pids) < 2:
            fail("all %d connections went to one worker: sharing not exercised" % total)
        # one count per address, whichever worker served the attempt
        check(sorted(counts) == list(range(1, total + 1)),
              "failures counted across workers: %s" % counts)
        # a successful login resets the count for the address
        c = Raw(srv.port)
        r = c.cmd("ok", "LOGIN %s %s" % (USER, PASSWORD))
        check(r[-1].startswith("ok OK"), "right password accepted")
        c.close()
        c = Raw(srv.port)
        c.cmd("b", "LOGIN %s wrong-again" % USER)
        c.close()
        srv.log.flush()
        with open(srv.log_path) as f:
            last = [ln for ln in f if "event=login_failed" in ln][-1]
        check(last.rstrip().endswith("fails=1"), "count reset by a good login: " + last)
        # clients that leave while their password is being verified (in the
        # worker's verifying thread): the server forgets them and goes on
        for i in range(20):
            c = Raw(srv.port)
            c.send("q%d LOGIN %s %s\r\n" % (i, USER, PASSWORD if i % 2 else "wrong"))
            c.close()
        c = Raw(srv.port)
        r = c.cmd("ok2", "LOGIN %s %s" % (USER, PASSWORD))
        check(r[-1].startswith("ok2 OK"), "still serving after clients left mid-login")
        r = c.cmd("u", "LOGIN nobody-here@lamdong.gov.vn x")
        check(r[-1].startswith("u BAD") or r[-1].startswith("u NO"), "LOGIN when logged in")
        c.close()
        c = Raw(srv.port)
        r = c.cmd("u2", "LOGIN nobody-here@lamdong.gov.vn x")
        check(r[-1].startswith("u2 NO") and "AUTHENTICATIONFAILED" in r[-1],
              "an unknown user is refused like a wrong password")
        c.close()
        check(srv.proc.poll() is None, "congvu-imapd still running")
    except Exception:
        srv.dump_log()
        raise
    finally:
        srv.stop()
    print("PASS")


if __name__ == "__main__":
    main()
