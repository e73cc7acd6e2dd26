#!/usr/bin/env python3
"""SPF (libspf2) through global.dns_server: a dnsmasq started here on a
loopback port serves the records; the milter is driven with miltertest
(milter/spf.lua) and the offline `score` command must agree with it."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_common as mc  # noqa: E402

RECORDS = [
    ("pass.example", "v=spf1 ip4:192.0.2.10 -all"),
    ("fail.example", "v=spf1 ip4:192.0.2.10 -all"),
    ("soft.example", "v=spf1 ip4:192.0.2.10 ~all"),
    ("lamdong.gov.vn", "v=spf1 ip4:192.0.2.10 -all"),
]
MESSAGE = (b"From: user@fail.example\r\nTo: a@lamdong.gov.vn\r\nSubject: x\r\n"
           b"Date: Mon, 2 Mar 2026 08:00:00 +0700\r\nMessage-ID: <1@fail.example>\r\n\r\nhello\r\n")


class Spf(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        mc.need("miltertest", "miltertest")
        cls.tmp = mc.TempDir("congvu-spf.")
        cls.dns = mc.Dnsmasq(cls.tmp, ["example", "lamdong.gov.vn"], RECORDS, [
            ("66.2.0.192.bl.example", "127.0.0.2"),   # 192.0.2.66 is listed
            ("10.2.0.192.wl.example", "127.0.0.5"),   # 192.0.2.10 is vouched for
            ("77.2.0.192.bl.example", "192.0.2.1"),   # not 127/8: an error code, not a listing
        ])
        try:
            cls.milter = mc.Milter(cls.tmp, "global.dns_server=" + cls.dns.server,
                                   "milter-spam.allow_sender_domains=pass.example",
                                   "global.hostname=mx.lamdong.gov.vn")
        except Exception:
            cls.dns.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.milter.stop()
        finally:
            cls.dns.stop()
            cls.tmp.remove()

    def test_miltertest(self):
        rc, out = mc.miltertest("spf.lua", self.milter.spec)
        self.assertEqual(rc, 0, out)

    def score(self, client, sender):
        p = self.milter.run("score", "--client", client, "--from", sender, "--verbose", "-",
                            stdin=MESSAGE)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode(), p.stderr.decode()

    def test_offline_same_verdict(self):
        out, err = self.score("192.0.2.66", "user@fail.example")
        self.assertRegex(out, r"^-\t4\.0\tham\n$")
        self.assertIn("tests=SPF_FAIL", err)
        out, err = self.score("192.0.2.66", "user@lamdong.gov.vn")
        self.assertRegex(out, r"^-\t100\.0\tspam\n$")
        self.assertIn("SPF_FAIL_LOCAL", err)
        # Without a client address, no network checks at all.
        p = self.milter.run("score", "--verbose", "-", stdin=MESSAGE)
        self.assertEqual(p.stdout.decode(), "-\t0.0\tham\n")

    def test_dns_lists(self):
        def tests_for(client):
            p = self.milter.run("-o", "milter-spam.dnsbl_zones=bl.example=2.5",
                                "-o", "milter-spam.dnswl_zones=wl.example", "score",
                                "--client", client, "--from", "user@nospf.example", "--verbose",
                                "-", stdin=MESSAGE)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout.decode(), p.stderr.decode()
        out, err = tests_for("192.0.2.66")
        self.assertIn("DNSBL_BL_EXAMPLE", err)
        self.assertNotIn("DNSWL", err)
        self.assertEqual(out, "-\t2.5\tham\n")
        out, err = tests_for("192.0.2.10")
        self.assertIn("DNSWL_WL_EXAMPLE", err)
        self.assertEqual(out, "-\t-3.0\tham\n")
        out, err = tests_for("192.0.2.77")
        self.assertNotIn("DNSBL", err)
        self.assertNotIn("DNSWL", err)

    def test_dns_down(self):
        # A DNS server that does not answer: temperror, no penalty, no hang.
        port = mc.free_port()
        p = mc.subprocess.run([mc.MILTER, "-c", self.milter.conf, "-o",
                               "global.dns_server=127.0.0.1:%d" % port, "-o",
                               "milter-spam.dns_timeout=1s", "score", "--client", "192.0.2.66",
                               "--from", "user@fail.example", "--verbose", "-"],
                              input=MESSAGE, capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), "-\t0.0\tham\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
