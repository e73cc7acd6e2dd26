#!/usr/bin/env python3
"""congvu-quota end to end: every command of the contract, exit codes and
one-line error messages, on a real store in a temporary directory."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get("top_builddir", os.path.join(os.path.dirname(__file__), "..", ".."))
QUOTA = os.path.join(BUILD, "quota", "congvu-quota")


class QuotaCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="congvu-quota-")
        self.conf = os.path.join(self.dir, "congvu.conf")
        with open(self.conf, "w") as f:
            f.write("[global]\ndata_dir = %s\ndomains = lamdong.gov.vn dalat.lamdong.gov.vn\n"
                    "[quota]\npersonal = 1M\norganization = 2M\n" % self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def run_quota(self, *args, stdin=""):
        p = subprocess.run([QUOTA, "-c", self.conf] + list(args), input=stdin.encode(),
                           capture_output=True, timeout=60)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, *args, stdin=""):
        rc, out, err = self.run_quota(*args, stdin=stdin)
        self.assertEqual(rc, 0, "%s: %s" % (args, err))
        self.assertEqual(err, "")
        return out

    def fails(self, needle, *args, stdin=""):
        rc, out, err = self.run_quota(*args, stdin=stdin)
        self.assertNotEqual(rc, 0, args)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(needle, err)
        return err

    def test_accounts(self):
        self.ok("account", "add", "Demo@LamDong.gov.vn", stdin="bí mật\n")
        self.ok("account", "add", "vanphong@dalat.lamdong.gov.vn", "--organization", stdin="x\n")
        self.ok("account", "add", "big@lamdong.gov.vn", "--quota", "3G", stdin="x\n")
        lines = self.ok("account", "list").splitlines()
        self.assertEqual(lines, [
            "big@lamdong.gov.vn\tpersonal\t0\t%d" % (3 << 30),
            "demo@lamdong.gov.vn\tpersonal\t0\t%d" % (1 << 20),
            "vanphong@dalat.lamdong.gov.vn\torganization\t0\t%d" % (2 << 20),
        ])
        show = self.ok("show", "demo@lamdong.gov.vn")
        self.assertIn("used: 0\n", show)
        self.assertIn("limit: 1048576\n", show)
        self.assertIn("messages: 0\n", show)
        self.assertIn("percent: 0.0\n", show)
        self.ok("set", "demo@lamdong.gov.vn", "512K")
        self.assertIn("limit: 524288\n", self.ok("show", "demo@lamdong.gov.vn"))
        self.ok("account", "passwd", "demo@lamdong.gov.vn", stdin="mới\n")
        self.ok("account", "del", "big@lamdong.gov.vn")
        self.assertEqual(len(self.ok("account", "list").splitlines()), 2)

    def test_report(self):
        self.ok("account", "add", "a@lamdong.gov.vn", stdin="x\n")
        self.ok("account", "add", "b@lamdong.gov.vn", "--quota", "0", stdin="x\n")
        report = json.loads(self.ok("report", "--json"))
        self.assertEqual([r["address"] for r in report], ["a@lamdong.gov.vn", "b@lamdong.gov.vn"])
        self.assertEqual(report[0]["limit"], 1 << 20)
        self.assertEqual(report[0]["kind"], "personal")
        text = self.ok("report")
        self.assertIn("ADDRESS", text.splitlines()[0])
        self.assertEqual(len(text.splitlines()), 3)
        self.assertEqual(json.loads(self.empty_report()), [])

    def empty_report(self):
        other = tempfile.mkdtemp(prefix="congvu-quota-empty-")
        try:
            self.ok("-o", "global.data_dir=" + other, "account", "add", "z@lamdong.gov.vn",
                    stdin="x\n")
            self.ok("-o", "global.data_dir=" + other, "account", "del", "z@lamdong.gov.vn")
            return self.ok("-o", "global.data_dir=" + other, "report", "--json")
        finally:
            shutil.rmtree(other)

    def test_recalc(self):
        self.ok("account", "add", "a@lamdong.gov.vn", stdin="x\n")
        out = self.ok("recalc")
        self.assertEqual(out, "a@lamdong.gov.vn\tok\tused 0\tmessages 0\n")
        self.assertEqual(self.ok("recalc", "a@lamdong.gov.vn"), out)
        self.fails("unknown account", "recalc", "zz@lamdong.gov.vn")

    def test_errors(self):
        self.ok("account", "add", "a@lamdong.gov.vn", stdin="x\n")
        self.fails("already exists", "account", "add", "A@lamdong.gov.vn", stdin="y\n")
        self.fails("unknown account", "show", "nobody@lamdong.gov.vn")
        self.fails("unknown account", "account", "del", "nobody@lamdong.gov.vn")
        self.fails("unknown account", "set", "nobody@lamdong.gov.vn", "1G")
        self.fails("unknown account", "account", "passwd", "nobody@lamdong.gov.vn", stdin="x\n")
        self.fails("bad address", "account", "add", "not-an-address", stdin="x\n")
        self.fails("domain not in global.domains", "account", "add", "a@gmail.com", stdin="x\n")
        self.fails("bad size", "set", "a@lamdong.gov.vn", "lots")
        self.fails("bad size", "account", "add", "b@lamdong.gov.vn", "--quota", "1X", stdin="x\n")
        self.fails("empty password", "account", "add", "b@lamdong.gov.vn", stdin="\n")
        self.fails("no password", "account", "add", "b@lamdong.gov.vn", stdin="")
        self.fails("unknown option", "account", "add", "b@lamdong.gov.vn", "--admin", stdin="x\n")
        self.fails("unknown key 'quota.nokey'", "-o", "quota.nokey=1", "account", "list")
        rc, _, err = self.run_quota("frobnicate")
        self.assertEqual(rc, 2)
        self.assertIn("usage:", err)

    def test_password_not_in_arguments_or_store_plaintext(self):
        self.ok("account", "add", "a@lamdong.gov.vn", stdin="SieuBiMat-42\n")
        with open(os.path.join(self.dir, "store", "data.mdb"), "rb") as f:
            data = f.read()
        self.assertNotIn(b"SieuBiMat-42", data)
        self.assertIn(b"$y$", data)

    def test_missing_store(self):
        self.fails("store does not exist", "-o", "global.data_dir=" + self.dir + "/none",
                   "account", "list")


if __name__ == "__main__":
    unittest.main(verbosity=2)
