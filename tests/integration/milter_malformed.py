#!/usr/bin/env python3
"""Malformed messages are scored without a crash or a hang: broken MIME, bad
and unknown charsets, NUL bytes, a 10 MB single line, deep nesting, many
parts, base64 junk; through the offline `score` command (the milter's code
path) and through the milter protocol (milter/malformed.lua)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_common as mc  # noqa: E402

HDR = b"From: x@example.org\r\nTo: a@lamdong.gov.vn\r\nSubject: t\r\nDate: Mon, 2 Mar 2026 08:00:00 +0700\r\n"


def cases():
    yield "broken-mime", HDR + (b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
                                b"Content-Type: multipart/alternative\r\n\r\n--c\r\nnever closed\r\n")
    yield "no-boundary", HDR + b"Content-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n"
    yield "bad-charset", HDR + (b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
                                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=FF=FE=C3=28 caf=E9\r\n")
    yield "iso-2022-jp-junk", HDR + b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B\x1b(\x1b$)\xff\r\n"
    yield "nul-bytes", b"From: x@exa\x00mple.org\r\nSubject: a\x00b\r\n\r\nbody\x00with\x00nuls\r\n"
    yield "huge-line", HDR + b"\r\n" + b"B" * (10 * 1024 * 1024)
    yield "huge-header", b"Subject: " + b"s " * (5 * 1024 * 1024) + b"\r\n\r\nx\r\n"
    nest = b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(2000))
    yield "deep-nesting", HDR + nest + b"text\r\n"
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nword%d\r\n" % i for i in range(20000))
    yield "many-parts", HDR + b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + parts + b"--p--\r\n"
    yield "base64-junk", HDR + (b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                                + b"@@@!!!" * 100000 + b"\r\n")
    yield "empty", b""
    yield "only-crlf", b"\r\n" * 100000
    yield "binary", bytes(range(256)) * 4096


class Malformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = mc.TempDir("congvu-malformed.")
        cls.milter = mc.Milter(cls.tmp, "milter-spam.spf=no", "milter-spam.max_scan_size=16M")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.milter.stop()
        finally:
            cls.tmp.remove()

    def test_score_command(self):
        paths = []
        for name, data in cases():
            p = os.path.join(self.tmp.path, name + ".eml")
            with open(p, "wb") as f:
                f.write(data)
            paths.append(p)
        r = self.milter.run("score", *paths)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), len(paths), r.stdout)
        for path, line in zip(paths, lines):
            p, score, verdict = line.split("\t")
            self.assertEqual(p, path)
            float(score)
            self.assertIn(verdict, ("ham", "spam"))

    def test_through_milter(self):
        mc.need("miltertest", "miltertest")
        rc, out = mc.miltertest("malformed.lua", self.milter.spec)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
