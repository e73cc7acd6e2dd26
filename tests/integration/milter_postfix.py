#!/usr/bin/env python3
"""congvu-milter-spam behind a real Postfix: a private Postfix instance (its
own config_directory and queue_directory in a temporary directory, SMTP on a
loopback high port) with smtpd_milters pointing at the milter, relaying to a
small SMTP sink written here. Shows the verdict headers added to delivered
mail, the tagging of a forged local sender from outside (via XCLIENT), and
a 550 5.7.1 refusal of an executable attachment at the end of DATA."""
import base64
import email
import os
import smtplib
import socketserver
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_common as mc  # noqa: E402
from postfix_instance import PostfixInstance, master_cf  # noqa: E402

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/pfdata
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.lamdong.gov.vn
mydomain = lamdong.gov.vn
myorigin = lamdong.gov.vn
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = lamdong.gov.vn
relay_transport = relay:[127.0.0.1]:{sink}
default_transport = relay:[127.0.0.1]:{sink}
smtp_dns_support_level = disabled
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_milters = inet:127.0.0.1:{milter}
milter_default_action = tempfail
milter_protocol = 6
alias_maps =
alias_database =
smtputf8_enable = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
"""


class Sink(socketserver.ThreadingTCPServer):
    """A minimal SMTP server that keeps every message it is given."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), SinkHandler)


class SinkHandler(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self):
        self.reply("220 sink ESMTP")
        rcpts = []
        while True:
            line = self.rfile.readline(10000)
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink")
            elif verb == "MAIL":
                rcpts = []
                self.reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd)
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go")
                data = b""
                while True:
                    chunk = self.rfile.readline(1000000)
                    if not chunk or chunk == b".\r\n":
                        break
                    if chunk.startswith(b".."):
                        chunk = chunk[1:]
                    data += chunk
                with self.server.lock:
                    self.server.messages.append(data)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


def message(frm, subject, attachment=None):
    m = ("From: %s\r\nTo: ketoan@lamdong.gov.vn\r\nSubject: %s\r\n"
         "Date: Mon, 2 Mar 2026 08:00:00 +0700\r\nMessage-ID: <%s.%f@example.org>\r\n"
         % (frm, subject, subject.replace(" ", "."), time.time()))
    if attachment is None:
        return m + "\r\nKinh gui phong ke toan.\r\n"
    name, data = attachment
    return (m + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nXem tep.\r\n--b\r\n"
            "Content-Type: application/octet-stream; name=\"%s\"\r\n"
            "Content-Disposition: attachment; filename=\"%s\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n"
            % (name, name, base64.b64encode(data).decode()))


class Postfix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.postfix = mc.need("postfix", "postfix")
        if os.geteuid() != 0:
            # A Postfix instance is started by root (it drops to "postfix").
            if os.environ.get("CI"):
                sys.exit("FAIL: the Postfix test needs root")
            print("SKIP: the Postfix test needs root")
            sys.exit(77)
        cls.tmp = mc.TempDir("congvu-postfix.")
        cls.sink = Sink()
        threading.Thread(target=cls.sink.serve_forever, daemon=True).start()
        cls.milter = mc.Milter(cls.tmp, "milter-spam.spf=no")
        try:
            cls.start_postfix()
        except BaseException:
            cls.milter.stop()
            cls.sink.shutdown()
            cls.sink.server_close()
            cls.tmp.remove()
            raise

    @classmethod
    def start_postfix(cls):
        cls.port = mc.free_port()
        cls.pf = PostfixInstance(cls.tmp.path, "127.0.0.1", cls.port, exe=cls.postfix)
        cls.pf.configure(MAIN_CF.format(dir=cls.tmp.path, sink=cls.sink.server_address[1],
                                        milter=cls.milter.port),
                         master_cf("127.0.0.1", cls.port))
        cls.pf.start()

    @classmethod
    def maillog(cls):
        return cls.pf.maillog()

    @classmethod
    def stop_postfix(cls):
        cls.pf.stop()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_postfix()
            cls.sink.shutdown()
            cls.sink.server_close()
            log = cls.milter.stop()
            assert "action=reject" in log, log
        finally:
            cls.tmp.remove()

    def send(self, msg, xclient=None):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as s:
            if xclient is not None:
                s.ehlo("client")
                code, text = s.docmd("XCLIENT", xclient)
                self.assertEqual(code, 220, text)
            s.ehlo("mx.example.net")
            s.sendmail("sender@example.net", ["ketoan@lamdong.gov.vn"], msg.encode())

    def delivered(self, subject):
        """The message with that subject as the sink got it (waits)."""
        deadline = time.time() + 60
        while time.time() < deadline:
            with self.sink.lock:
                for raw in self.sink.messages:
                    m = email.message_from_bytes(raw)
                    if m["Subject"] == subject:
                        return m
            time.sleep(0.2)
        self.fail("%r not delivered; maillog:\n%s" % (subject, self.maillog()))

    def test_clean_message_tagged_no(self):
        self.send(message("Van thu <vanthu@partner.example>", "lich hop"))
        m = self.delivered("lich hop")
        self.assertEqual(m["X-Spam-Score"], "0.0")
        self.assertEqual(m["X-Spam-Status"], "No, score=0.0 tests=none")

    def test_forged_local_sender_tagged_yes(self):
        self.send(message("Giam doc <giamdoc@lamdong.gov.vn>", "chuyen khoan gap"),
                  xclient="ADDR=203.0.113.5 NAME=mx.example.net")
        m = self.delivered("chuyen khoan gap")
        self.assertTrue(m["X-Spam-Status"].startswith("Yes, score="), m["X-Spam-Status"])
        self.assertIn("LOCAL_FROM_OUTSIDE", m["X-Spam-Status"])
        self.assertGreaterEqual(float(m["X-Spam-Score"]), 5.0)

    def test_executable_rejected(self):
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send(message("x@example.org", "hoa don", ("HoaDon.pdf.exe", b"MZ\x90\x00")))
        self.assertEqual(cm.exception.smtp_code, 550)
        self.assertIn(b"5.7.1", cm.exception.smtp_error)
        self.assertIn(b"EXECUTABLE_ATTACHMENT", cm.exception.smtp_error)


if __name__ == "__main__":
    unittest.main(verbosity=2)
