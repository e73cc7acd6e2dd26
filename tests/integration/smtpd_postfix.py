"""A real Postfix as the edge MTA relaying into congvu-smtpd: a private
Postfix instance (own config and queue directories in a temporary
directory, loopback high port) sends lamdong.gov.vn over SMTP with
mandatory TLS (smtp_tls_security_level = encrypt) and lmtp.lamdong.gov.vn
over LMTP; mail arrives in the store, and over LMTP an unknown recipient is
bounced by Postfix while the other recipient of the same message is
delivered (one reply per recipient)."""

import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import Server, check, fail, free_port  # noqa: E402
from postfix_instance import POSTFIX, PostfixInstance, master_cf  # noqa: E402

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/pfdata
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = edge.test
mydomain = edge.test
myorigin = edge.test
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = lamdong.gov.vn lmtp.lamdong.gov.vn
relay_transport = relay:[127.0.0.1]:{smtp}
transport_maps = inline:{{ lmtp.lamdong.gov.vn=lmtp:inet:127.0.0.1:{lmtp} }}
smtp_dns_support_level = disabled
smtp_tls_security_level = encrypt
lmtp_tls_security_level = none
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
notify_classes =
bounce_queue_lifetime = 0
maximal_queue_lifetime = 0
"""


def start_postfix(tmp, port, smtp_port, lmtp_port):
    pf = PostfixInstance(tmp, "127.0.0.1", port, fail=fail)
    pf.configure(MAIN_CF.format(dir=tmp, smtp=smtp_port, lmtp=lmtp_port),
                 master_cf("127.0.0.1", port))
    pf.start()
    return pf


def wait_for(fn, what, pf, srv, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return
        time.sleep(0.3)
    print(pf.maillog()[-4000:], file=sys.stderr)
    print(srv.log()[-4000:], file=sys.stderr)
    check(False, what)


def main():
    if not os.access(POSTFIX, os.X_OK):
        print("SKIP: postfix not installed (Debian package postfix)")
        if os.environ.get("CI"):
            sys.exit(1)
        sys.exit(77)
    srv = Server(services=("smtp", "lmtp"),
                 settings={"global.domains": "lamdong.gov.vn lmtp.lamdong.gov.vn"})
    tmp = os.path.join(srv.dir, "postfix")
    os.makedirs(tmp)
    pf = None
    try:
        srv.add_account("demo@lamdong.gov.vn")
        srv.add_account("demo@lmtp.lamdong.gov.vn")
        srv.start()
        port = free_port()
        pf = start_postfix(tmp, port, srv.ports["smtp"], srv.ports["lmtp"])
        c = smtplib.SMTP("127.0.0.1", port, timeout=30)
        c.sendmail("sender@example.org", ["demo@lamdong.gov.vn"],
                   "Subject: via postfix smtp\r\nMessage-ID: <a@test>\r\n\r\nHello.\r\n")
        c.sendmail("sender@example.org",
                   ["demo@lmtp.lamdong.gov.vn", "ghost@lmtp.lamdong.gov.vn"],
                   "Subject: via postfix lmtp\r\nMessage-ID: <b@test>\r\n\r\nHello.\r\n")
        c.quit()

        def arrived(addr, subject):
            return lambda: any(subject.encode() in m["data"] for m in srv.messages(addr))
        wait_for(arrived("demo@lamdong.gov.vn", "via postfix smtp"), "SMTP relay", pf, srv)
        wait_for(arrived("demo@lmtp.lamdong.gov.vn", "via postfix lmtp"), "LMTP relay", pf, srv)
        smtp_msg = [m for m in srv.messages("demo@lamdong.gov.vn")
                    if b"via postfix smtp" in m["data"]][0]["data"]
        check(b"from edge.test" in smtp_msg and b"with ESMTPS id" in smtp_msg,
              "Postfix did not use TLS: %r" % smtp_msg[:400])
        lmtp_msg = [m for m in srv.messages("demo@lmtp.lamdong.gov.vn")
                    if b"via postfix lmtp" in m["data"]][0]["data"]
        check(b"with LMTP id" in lmtp_msg, "not received over LMTP: %r" % lmtp_msg[:400])
        wait_for(lambda: "ghost@lmtp.lamdong.gov.vn" in pf.maillog() and
                 "status=bounced" in pf.maillog(), "unknown LMTP recipient not bounced", pf,
                 srv)
        log = pf.maillog()
        check("relay=127.0.0.1[127.0.0.1]:%d" % srv.ports["lmtp"] in log and
              "status=sent" in log, "LMTP delivery not logged by Postfix")
    finally:
        if pf is not None:
            pf.stop()
        srv.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
