"""Helpers of the outbound delivery tests: a private Postfix instance as the
remote MX on 127.0.0.2 (its own config and queue directories in a temporary
directory, delivering into one Maildir), dnsmasq serving the MX records on a
high port, and congvu-smtpd (smtpd_common.Server) pointed at both.
Python standard library only."""

import glob
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtpd_common as sc  # noqa: E402
from postfix_instance import PostfixInstance, system_master_cf  # noqa: E402
from testnet import Dnsmasq, stop_process, wait_port as wait_listen  # noqa: E402
from testnet import free_port as free_port_on  # noqa: E402

REMOTE_IP = "127.0.0.2"
REMOTE_DOMAIN = "quangninh.gov.vn"
REMOTE_MX = "mx.quangninh.gov.vn"


def need(tool, package):
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        if os.environ.get("CI"):
            sc.fail("%s missing: install the Debian package %s" % (tool, package))
        print("SKIP: %s missing (Debian package %s)" % (tool, package))
        sys.exit(77)
    return path


def make_cert_for(directory, name, extra=(), base="remote"):
    """A self-signed certificate for host name and the extra names (its own
    CA, for verify)."""
    cert = os.path.join(directory, base + ".pem")
    key = os.path.join(directory, base + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=" + ",".join(
                        "DNS:" + n for n in (name,) + tuple(extra)),
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Dns(Dnsmasq):
    """dnsmasq answering MX and A records from its command line only."""

    def __init__(self, directory, mx, hosts, zones=(REMOTE_DOMAIN,), txt_records=()):
        super().__init__(need("dnsmasq", "dnsmasq-base"), directory, zones=zones, mx=mx,
                         hosts=hosts, txt=txt_records, fail=sc.fail)


class Postfix:
    """A Postfix instance of its own: config_directory and queue_directory
    under directory, smtpd on REMOTE_IP:port only, every recipient of
    REMOTE_DOMAIN delivered into one Maildir, the addresses in reject
    refused with 550 5.1.1."""

    def __init__(self, directory, reject=(), starttls=True, cert_name=None,
                 domains=(REMOTE_DOMAIN,)):
        self.exe = need("postfix", "postfix")
        self.dir = os.path.join(directory, "postfix")
        self.maildir = os.path.join(self.dir, "mail", "remote")
        os.makedirs(os.path.dirname(self.maildir))
        self.port = free_port_on(REMOTE_IP)
        self.instance = PostfixInstance(self.dir, REMOTE_IP, self.port, fail=sc.fail, exe=self.exe)
        self.conf = self.instance.conf
        self.queue = self.instance.queue
        import pwd
        pw = pwd.getpwnam("postfix")
        os.chown(os.path.dirname(self.maildir), pw.pw_uid, pw.pw_gid)
        access = " ".join("{ %s = 550 5.1.1 <%s>: Recipient address rejected: no such user }"
                          % (a, a) for a in reject)
        lines = [
            "compatibility_level = 3.6",
            "queue_directory = " + self.queue,
            "data_directory = " + self.instance.data,
            "meta_directory = /etc/postfix",
            "mail_owner = postfix",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "myhostname = " + REMOTE_MX,
            "mydomain = " + REMOTE_DOMAIN,
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            "maillog_file = " + self.instance.maillog_path,
            "maillog_file_prefixes = " + self.dir,
            "virtual_mailbox_domains = " + " ".join(domains),
            "virtual_mailbox_base = " + os.path.dirname(self.maildir),
            "virtual_mailbox_maps = static:remote/",
            "virtual_uid_maps = static:%d" % pw.pw_uid,
            "virtual_gid_maps = static:%d" % pw.pw_gid,
            "smtpd_recipient_restrictions = %s permit_mynetworks, reject_unauth_destination"
            % (("check_recipient_access inline:{ %s }," % access) if reject else ""),
            "smtputf8_enable = yes",
            "alias_maps =",
            "alias_database =",
            "relayhost =",
            "smtp_dns_support_level = disabled",
        ]
        self.cert = None
        if starttls:
            cert, key = make_cert_for(self.dir, cert_name or "localhost")
            os.chmod(key, 0o644)
            self.cert = cert
            lines += ["smtpd_tls_security_level = may",
                      "smtpd_tls_cert_file = " + cert, "smtpd_tls_key_file = " + key]
        else:
            lines += ["smtpd_tls_security_level = none"]
        self.instance.configure("\n".join(lines) + "\n", system_master_cf(REMOTE_IP, self.port))

    def postfix(self, *args):
        return self.instance.postfix(*args)

    def start(self):
        self.instance.start(timeout=20.0)

    def stop(self):
        self.instance.stop()

    def log(self):
        return self.instance.maillog()

    def delivered(self):
        """The messages in the Maildir, as bytes."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.maildir, "new", "*"))):
            with open(path, "rb") as f:
                out.append(f.read())
        return out

    def wait_delivered(self, count, timeout=60.0):
        end = time.time() + timeout
        while time.time() < end:
            got = self.delivered()
            if len(got) >= count:
                return got
            time.sleep(0.2)
        return self.delivered()


def congvu(directory_dns, settings=None):
    """congvu-smtpd with an MX listener for submission from 127.0.0.1
    (trusted, so it may relay), using the DNS server and the remote port."""
    s = {
        "global.dns_server": directory_dns.server,
        "smtpd.relay_host": "",
        "smtpd.retry_min_backoff": "1h",
        "smtpd.outbound_connect_timeout": "5s",
        "smtpd.outbound_timeout": "30s",
    }
    if settings:
        s.update(settings)
    return sc.Server(settings=s, services=("smtp",))


def queue_cmd(server, *args):
    return subprocess.run([sc.SMTPD, "-c", server.conf, "queue"] + list(args),
                          capture_output=True, text=True, timeout=60)


def queue_list(server):
    r = queue_cmd(server, "list")
    sc.check(r.returncode == 0, "queue list: " + r.stderr)
    return [line.split("\t") for line in r.stdout.splitlines()]


def wait_for(pred, timeout=60.0, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def send(server, sender, rcpts, subject, body="Hello from Lam Dong.\r\n"):
    c = server.smtp("smtp")
    msg = sc.message(subject, body=body, sender=sender, to=", ".join(rcpts))
    c.sendmail(sender, rcpts, msg)
    c.quit()


def spki_sha256(cert_path):
    """SHA-256 of a certificate's SubjectPublicKeyInfo, for a TLSA 3 1 1 record."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


class SignedDns:
    """NSD serving DNSSEC-signed zones (ldns-signzone) on 127.0.0.1:PORT;
    trust_anchor is a file of their DNSKEY records for libunbound.
    zones: {name: [record lines relative to the zone]}; tamper: {name:
    (old, new)} replaces text in a zone after signing (a forged answer)."""

    def __init__(self, directory, zones, tamper=None):
        nsd = need("nsd", "nsd")
        keygen = need("ldns-keygen", "ldnsutils")
        signzone = need("ldns-signzone", "ldnsutils")
        self.dir = os.path.join(directory, "nsd")
        os.makedirs(self.dir)
        self.trust_anchor = os.path.join(self.dir, "anchors.key")
        anchors = []
        zone_conf = []
        for name, records in zones.items():
            path = os.path.join(self.dir, name + ".zone")
            with open(path, "w") as f:
                f.write("$ORIGIN %s.\n$TTL 300\n" % name)
                f.write("@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n" % (name, name))
                f.write("@ IN NS ns.%s.\nns IN A 127.0.0.1\n" % name)
                for r in records:
                    f.write(r + "\n")
            base = subprocess.run([keygen, "-a", "ECDSAP256SHA256", "-k", name], cwd=self.dir,
                                  check=True, capture_output=True, text=True).stdout.strip()
            subprocess.run([signzone, path, base], cwd=self.dir, check=True,
                           capture_output=True)
            if tamper and name in tamper:
                with open(path + ".signed") as f:
                    signed = f.read()
                old, new = tamper[name]
                if old not in signed:
                    sc.fail("tamper: %r not in the signed zone" % old)
                with open(path + ".signed", "w") as f:
                    f.write(signed.replace(old, new))
            with open(os.path.join(self.dir, base + ".key")) as f:
                anchors.append(f.read())
            zone_conf.append("zone:\n  name: %s\n  zonefile: %s.signed\n" % (name, path))
        with open(self.trust_anchor, "w") as f:
            f.write("".join(anchors))
        for _ in range(5):
            self.port = sc.free_port()
            conf = os.path.join(self.dir, "nsd.conf")
            with open(conf, "w") as f:
                f.write("server:\n  ip-address: 127.0.0.1@%d\n  port: %d\n  do-ip6: no\n"
                        "  username: \"\"\n  chroot: \"\"\n  database: \"\"\n"
                        "  zonelistfile: %s/zone.list\n  xfrdfile: %s/xfrd.state\n"
                        "  pidfile: %s/nsd.pid\n  logfile: %s/nsd.log\n  server-count: 1\n"
                        "remote-control:\n  control-enable: no\n"
                        % (self.port, self.port, self.dir, self.dir, self.dir, self.dir))
                f.write("".join(zone_conf))
            self.proc = subprocess.Popen([nsd, "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            if wait_listen("127.0.0.1", self.port, timeout=10) and self.proc.poll() is None:
                break
            self.stop()
        else:
            sc.fail("nsd did not start")
        self.server = "127.0.0.1:%d" % self.port

    def stop(self):
        stop_process(self.proc)


def teardown(*steps):
    """Runs every clean-up step even when one fails (smtpd_common's stop()
    exits on a sanitizer report); the first failure is raised at the end."""
    first = None
    for step in steps:
        try:
            step()
        except BaseException as e:  # noqa: B902 - SystemExit from sc.fail included
            if first is None:
                first = e
    if first is not None:
        raise first
