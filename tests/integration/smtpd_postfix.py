"""A real Postfix as the edge MTA relaying into congvu-smtpd: a private
Postfix instance (own config and queue directories in a temporary
directory, loopback high port) sends lamdong.gov.vn over SMTP with
mandatory TLS (smtp_tls_security_level = encrypt) and lmtp.lamdong.gov.vn
over LMTP; mail arrives in the store, and over LMTP an unknown recipient is
bounced by Postfix while the other recipient of the same message is
delivered (one reply per recipient)."""

import os
import shutil
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import Server, check, free_port, wait_port  # noqa: E402

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""

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


def maillog(tmp):
    try:
        with open(os.path.join(tmp, "maillog"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def start_postfix(tmp, port, smtp_port, lmtp_port):
    etc = os.path.join(tmp, "etc")
    for d in ("etc", "queue", "pfdata"):
        os.makedirs(os.path.join(tmp, d))
    shutil.chown(os.path.join(tmp, "pfdata"), "postfix")
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(dir=tmp, smtp=smtp_port, lmtp=lmtp_port))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(port=port))
    r = subprocess.run([POSTFIX, "-c", etc, "start"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "postfix start: %s%s%s" % (r.stdout, r.stderr, maillog(tmp)))
    check(wait_port(port, 30), "postfix does not listen:\n" + maillog(tmp))
    return etc


def stop_postfix(tmp, etc):
    subprocess.run([POSTFIX, "-c", etc, "stop"], capture_output=True, timeout=60)
    pidfile = os.path.join(tmp, "queue", "pid", "master.pid")
    end = time.time() + 30
    while os.path.exists(pidfile) and time.time() < end:
        time.sleep(0.2)


def wait_for(fn, what, tmp, srv, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return
        time.sleep(0.3)
    print(maillog(tmp)[-4000:], file=sys.stderr)
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
    etc = None
    try:
        srv.add_account("demo@lamdong.gov.vn")
        srv.add_account("demo@lmtp.lamdong.gov.vn")
        srv.start()
        port = free_port()
        etc = start_postfix(tmp, port, srv.ports["smtp"], srv.ports["lmtp"])
        c = smtplib.SMTP("127.0.0.1", port, timeout=30)
        c.sendmail("sender@example.org", ["demo@lamdong.gov.vn"],
                   "Subject: via postfix smtp\r\nMessage-ID: <a@test>\r\n\r\nHello.\r\n")
        c.sendmail("sender@example.org",
                   ["demo@lmtp.lamdong.gov.vn", "ghost@lmtp.lamdong.gov.vn"],
                   "Subject: via postfix lmtp\r\nMessage-ID: <b@test>\r\n\r\nHello.\r\n")
        c.quit()

        def arrived(addr, subject):
            return lambda: any(subject.encode() in m["data"] for m in srv.messages(addr))
        wait_for(arrived("demo@lamdong.gov.vn", "via postfix smtp"), "SMTP relay", tmp, srv)
        wait_for(arrived("demo@lmtp.lamdong.gov.vn", "via postfix lmtp"), "LMTP relay", tmp, srv)
        smtp_msg = [m for m in srv.messages("demo@lamdong.gov.vn")
                    if b"via postfix smtp" in m["data"]][0]["data"]
        check(b"from edge.test" in smtp_msg and b"with ESMTPS id" in smtp_msg,
              "Postfix did not use TLS: %r" % smtp_msg[:400])
        lmtp_msg = [m for m in srv.messages("demo@lmtp.lamdong.gov.vn")
                    if b"via postfix lmtp" in m["data"]][0]["data"]
        check(b"with LMTP id" in lmtp_msg, "not received over LMTP: %r" % lmtp_msg[:400])
        wait_for(lambda: "ghost@lmtp.lamdong.gov.vn" in maillog(tmp) and
                 "status=bounced" in maillog(tmp), "unknown LMTP recipient not bounced", tmp,
                 srv)
        log = maillog(tmp)
        check("relay=127.0.0.1[127.0.0.1]:%d" % srv.ports["lmtp"] in log and
              "status=sent" in log, "LMTP delivery not logged by Postfix")
    finally:
        if etc is not None:
            stop_postfix(tmp, etc)
        srv.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
