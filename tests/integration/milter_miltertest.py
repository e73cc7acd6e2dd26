#!/usr/bin/env python3
"""congvu-milter-spam through Debian's miltertest: one Lua script per stage
and action (tests/integration/milter/*.lua), against the real daemon on a
loopback port; then SIGTERM, a clean exit and the log lines."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_common as mc  # noqa: E402

SCRIPTS = ["stages.lua", "abort.lua", "spoof.lua", "reject.lua", "headers.lua", "ratelimit.lua"]


class Miltertest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        mc.need("miltertest", "miltertest")
        cls.tmp = mc.TempDir("congvu-miltertest.")
        # SPF has its own test with a DNS server; here no network checks.
        cls.milter = mc.Milter(cls.tmp, "milter-spam.spf=no", "milter-spam.ratelimit_messages=3")
        cls.defines = [("zip_scr", mc.zip_with("anh/setup.scr")), ("zip_pdf", mc.zip_with("baocao.pdf"))]

    @classmethod
    def tearDownClass(cls):
        log = cls.milter.stop()
        cls.tmp.remove()
        # One log line per message, with the verdict and no message text.
        assert "action=reject" in log and "action=tempfail" in log and "event=stop" in log, log
        assert "Chuyen gap" not in log, log

    def run_script(self, name):
        rc, out = mc.miltertest(name, self.milter.spec, self.defines)
        self.assertEqual(rc, 0, "%s failed:\n%s" % (name, out))


    def test_zz_sighup_reload(self):
        rc, out = mc.miltertest("reload.lua", self.milter.spec, [("want", "No")])
        self.assertEqual(rc, 0, out)
        # A bad file is refused: the milter keeps running on the old one.
        with open(self.milter.conf, "a") as f:
            f.write("[milter-spam]\nscore_no_message_id = lots\n")
        self.milter.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertIsNone(self.milter.proc.poll(), "milter stopped on SIGHUP")
        rc, out = mc.miltertest("reload.lua", self.milter.spec, [("want", "No")])
        self.assertEqual(rc, 0, out)
        with open(self.milter.conf, "a") as f:
            f.write("score_no_message_id = 9\n")
        # Last line wins in the file; the reload applies it to later mail.
        self.milter.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while True:
            rc, out = mc.miltertest("reload.lua", self.milter.spec, [("want", "Yes")])
            if rc == 0 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(rc, 0, out)
        self.assertIsNone(self.milter.proc.poll())


for _name in SCRIPTS:
    def _test(self, name=_name):
        self.run_script(name)
    setattr(Miltertest, "test_" + _name[:-4], _test)

if __name__ == "__main__":
    unittest.main(verbosity=2)
