#!/usr/bin/env python3
"""The offline commands of the contract: `train spam|ham FILE...` and
`score FILE...` (PATH<TAB>SCORE<TAB>ham|spam), on generated mail in Vietnamese
and English; forgetting; unreadable files; standard input."""
import os
import random
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_common as mc  # noqa: E402

HAM = ("công văn số quyết định ủy ban nhân dân tỉnh lâm đồng kính gửi các sở ban ngành "
       "báo cáo kết quả thực hiện kế hoạch năm họp giao ban tuần lịch công tác").split()
SPAM = ("cheap pills viagra casino bonus winner lottery claim prize click here unsubscribe "
        "limited offer discount free money guaranteed earn cash").split()


def message(words, rnd, n):
    body = " ".join(rnd.choice(words) for _ in range(60))
    subject = " ".join(rnd.choice(words) for _ in range(4))
    return ("From: sender%d@example.org\r\nTo: staff@lamdong.gov.vn\r\nSubject: %s\r\n"
            "Date: Mon, 2 Mar 2026 08:00:00 +0700\r\nMessage-ID: <%d@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n" % (n, subject, n, body)).encode()


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = mc.TempDir("congvu-milter-cli.")
        self.conf = self.tmp.file("congvu.conf", "[global]\ndata_dir = %s/data\n" % self.tmp.path)
        rnd = random.Random(1)
        self.files = {}
        for kind, words in (("ham", HAM), ("spam", SPAM)):
            self.files[kind] = []
            for i in range(70):
                p = os.path.join(self.tmp.path, "%s%02d.eml" % (kind, i))
                with open(p, "wb") as f:
                    f.write(message(words, rnd, i))
                self.files[kind].append(p)

    def tearDown(self):
        self.tmp.remove()

    def run_milter(self, *args, stdin=None):
        return subprocess.run([mc.MILTER, "-c", self.conf] + list(args), input=stdin,
                              capture_output=True, timeout=120)

    def score(self, *files):
        p = self.run_milter("score", *files)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = {}
        for line in p.stdout.decode().splitlines():
            self.assertRegex(line, r"^[^\t]+\t-?\d+\.\d\t(ham|spam)$")
            path, score, verdict = line.split("\t")
            out[path] = (float(score), verdict)
        return out

    def test_train_and_score(self):
        for kind in ("ham", "spam"):
            p = self.run_milter("train", kind, *self.files[kind][:60])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("learnt 60 message(s) as " + kind, p.stderr.decode())
        held_out = self.files["ham"][60:] + self.files["spam"][60:]
        out = self.score(*held_out)
        self.assertEqual(list(out), held_out)  # one line per file, in order
        for f in self.files["ham"][60:]:
            self.assertEqual(out[f][1], "ham", (f, out[f]))
            self.assertLess(out[f][0], 0)
        for f in self.files["spam"][60:]:
            self.assertEqual(out[f][1], "spam", (f, out[f]))
        # Standard input, and the verbose status line.
        with open(self.files["spam"][65], "rb") as f:
            p = self.run_milter("score", "--verbose", "-", stdin=f.read())
        self.assertRegex(p.stdout.decode(), r"^-\t\d+\.\d\tspam\n$")
        self.assertRegex(p.stderr.decode(), r"^-: Yes, score=\d+\.\d tests=BAYES_9\d bayes=(0\.9|1\.0)")
        # Forgetting the spam: too few left, the classifier stands aside.
        p = self.run_milter("train", "spam", "--forget", *self.files["spam"][:60])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = self.score(self.files["spam"][65])
        self.assertEqual(out[self.files["spam"][65]], (0.0, "ham"))

    def test_errors(self):
        missing = os.path.join(self.tmp.path, "missing.eml")
        p = self.run_milter("score", missing, self.files["ham"][0])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(missing, p.stderr.decode())
        # The other file is still scored.
        self.assertEqual(p.stdout.decode().count("\n"), 1)
        p = self.run_milter("train", "junk", self.files["ham"][0])
        self.assertEqual(p.returncode, 2)
        p = self.run_milter("train", "ham")
        self.assertEqual(p.returncode, 2)
        p = self.run_milter("-o", "milter-spam.bayes=no", "train", "ham", self.files["ham"][0])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("milter-spam.bayes", p.stderr.decode())
        self.assertTrue(re.search(r"\n$", p.stderr.decode()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
