#!/usr/bin/env python3
"""congvu-milter-spam start-up errors: a bad setting, a bad listener, an
unusable data directory and a port in use each stop it with a non-zero exit
and one line naming the setting or path; -n prints the configuration."""
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_common as mc  # noqa: E402


class Startup(unittest.TestCase):
    def setUp(self):
        self.tmp = mc.TempDir("congvu-milter-start.")
        self.conf = self.tmp.file("congvu.conf", "[global]\ndata_dir = %s/data\n" % self.tmp.path)

    def tearDown(self):
        self.tmp.remove()

    def run_milter(self, *args):
        return subprocess.run([mc.MILTER, "-c", self.conf] + list(args), capture_output=True,
                              timeout=60)

    def fails(self, needle, *args):
        p = self.run_milter(*args)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(needle, err)

    def test_bad_settings(self):
        self.fails("milter-spam.junk_threshold", "-o", "milter-spam.junk_threshold=abc")
        self.fails("milter-spam.reject_threshold", "-o", "milter-spam.reject_threshold=1")
        self.fails("milter-spam.listen", "-o", "milter-spam.listen=tcp:25")
        self.fails("milter-spam.trusted_networks", "-o", "milter-spam.trusted_networks=10.0.0.0/99")
        self.fails("milter-spam.nonsense", "-o", "milter-spam.nonsense=1")
        self.fails("/proc/congvu-none/spam", "-o", "global.data_dir=/proc/congvu-none",
                   "-o", "milter-spam.listen=inet:1@127.0.0.1")
        self.fails("no-such.conf", "-c", os.path.join(self.tmp.path, "no-such.conf"))

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            self.fails("milter-spam.listen", "-o", "milter-spam.listen=inet:%d@127.0.0.1" % port)

    def test_dump(self):
        p = self.run_milter("-n", "-o", "milter-spam.junk_threshold=6.5")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("[milter-spam]\n", out)
        self.assertIn("junk_threshold = 6.5\n", out)

    def test_usage(self):
        p = self.run_milter("learn", "spam", "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage:", p.stderr.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
