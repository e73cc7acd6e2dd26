"""congvu-smtpd names its clients as Postfix does (smtpd.reverse_dns): the
PTR name of the client's address, confirmed by an A (AAAA for IPv6) record
holding that address, goes into Received: and the milters' {client_name};
a PTR name pointing elsewhere, a malformed one, no PTR, or a DNS server
that never answers (after smtpd.reverse_dns_timeout) give "unknown", and
the session goes on. With global.dns_server set, loopback clients are
looked up there too, so the clients connect from 127.0.0.1 to 127.0.0.7
and ::1, and a small DNS server of this file answers for each address
differently. Without global.dns_server a loopback client is "localhost"
without a query; smtpd.reverse_dns = no gives "unknown", until a reload turns it on.
Python standard library only."""

import os
import signal
import smtplib
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_common import DOMAIN, Server, check, message  # noqa: E402
from smtpd_milter import ScriptedMilter  # noqa: E402

DEMO = "demo@" + DOMAIN
T_PTR, T_A, T_AAAA = 12, 1, 28


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_name(msg, off):
    """The question name (uncompressed) at off: (lower-case text, next offset)."""
    labels = []
    while msg[off] != 0:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels).lower(), off + 1


class DnsServer(threading.Thread):
    """Authoritative for everything on 127.0.0.1:PORT over UDP: records
    {(name, type): [rdata]}; names in silent get no answer at all; other
    names NXDOMAIN. Counts the queries per (name, type)."""

    def __init__(self, records, silent=()):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.records = records
        self.silent = set(silent)
        self.queries = {}
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self.answer(msg)
            except (IndexError, struct.error):
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)

    def answer(self, msg):
        qid, flags, qd = struct.unpack(">HHH", msg[:6])
        if qd != 1:
            return None
        name, off = read_name(msg, 12)
        qtype, qclass = struct.unpack(">HH", msg[off:off + 4])
        question = msg[12:off + 4]
        self.queries[(name, qtype)] = self.queries.get((name, qtype), 0) + 1
        if name in self.silent:
            return None
        names = {n for n, _ in self.records}
        rdatas = self.records.get((name, qtype), [])
        rcode = 0 if name in names else 3
        out_flags = 0x8400 | (flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
        reply = struct.pack(">HHHHHH", qid, out_flags, 1, len(rdatas), 0, 0) + question
        for rd in rdatas:
            reply += struct.pack(">HHHIH", 0xC00C, qtype, 1, 60, len(rd)) + rd
        return reply

    def close(self):
        self.stopping = True
        self.join(5)
        self.sock.close()


def ptr(ip):
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def ptr6(ip):
    nibbles = socket.inet_pton(socket.AF_INET6, ip).hex()
    return ".".join(reversed(nibbles)) + ".ip6.arpa"


def a(ip):
    return socket.inet_aton(ip)


def aaaa(ip):
    return socket.inet_pton(socket.AF_INET6, ip)


RECORDS = {
    # 127.0.0.1: confirmed
    (ptr("127.0.0.1"), T_PTR): [wire_name("mx.khachhang.vn")],
    ("mx.khachhang.vn", T_A): [a("127.0.0.1")],
    # 127.0.0.2: the name's address is another one
    (ptr("127.0.0.2"), T_PTR): [wire_name("gia.khachhang.vn")],
    ("gia.khachhang.vn", T_A): [a("192.0.2.7")],
    # 127.0.0.4: no PTR (NXDOMAIN)
    # 127.0.0.5: two names, the second one confirmed
    (ptr("127.0.0.5"), T_PTR): [wire_name("khac.khachhang.vn"), wire_name("mx5.khachhang.vn")],
    ("khac.khachhang.vn", T_A): [a("192.0.2.8")],
    ("mx5.khachhang.vn", T_A): [a("192.0.2.9"), a("127.0.0.5")],
    # 127.0.0.6: a name that is no host name, though its address matches
    (ptr("127.0.0.6"), T_PTR): [wire_name("bad_name.khachhang.vn")],
    ("bad_name.khachhang.vn", T_A): [a("127.0.0.6")],
    # 127.0.0.7: the PTR name's own look-up never answers
    (ptr("127.0.0.7"), T_PTR): [wire_name("cham.khachhang.vn")],
    ("cham.khachhang.vn", T_A): [a("127.0.0.7")],
    # ::1: confirmed by its AAAA record
    (ptr6("::1"), T_PTR): [wire_name("mx6.khachhang.vn")],
    ("mx6.khachhang.vn", T_AAAA): [aaaa("2001:db8::1"), aaaa("::1")],
    ("mx6.khachhang.vn", T_A): [a("127.0.0.1")],
}
# 127.0.0.3: the PTR query is never answered
SILENT = (ptr("127.0.0.3"), "cham.khachhang.vn")


def send(srv, source, subject, smtps=False):
    """One message from source over port 25 (or smtps, authenticated);
    returns its stored bytes."""
    host = "::1" if ":" in source else "127.0.0.1"
    if smtps:
        c = smtplib.SMTP_SSL(host, srv.ports["smtps"], timeout=30, source_address=(source, 0),
                             context=srv.tls_context())
    else:
        c = smtplib.SMTP(host, srv.ports["smtp"], timeout=30, source_address=(source, 0))
    c.ehlo("helo.khachhang.vn")
    if smtps:
        c.login(DEMO, "secret")
    refused = c.sendmail(DEMO if smtps else "s@example.org", [DEMO], message(subject))
    check(refused == {}, "refused: %r" % refused)
    c.quit()
    got = [m for m in srv.messages(DEMO) if ("Subject: " + subject).encode() in m["data"]]
    check(len(got) == 1, "message %r not stored once" % subject)
    return got[0]["data"]


def received_from(data):
    start = data.index(b"Received: ")
    return data[start:data.index(b"\r\n", start)].decode()


def connect_hostname(milter):
    """The host name of the milter's last connect ('C') packet."""
    conns = [d for cmd, d in milter.seen if cmd == "C"]
    return conns[-1].split(b"\0", 1)[0].decode() if conns else None


def test_with_server(dns, milter):
    srv = Server(services=("smtp", "smtps"), settings={
        "global.dns_server": "127.0.0.1:%d" % dns.port,
        "smtpd.reverse_dns_timeout": "1s",
        "smtpd.milters": milter.spec,
    })
    # IPv6 too, on the same port number
    srv.settings["smtpd.smtp_listen"] += ", [::1]:%d" % srv.ports["smtp"]
    srv.write_config()
    try:
        srv.start()
        srv.add_account(DEMO)
        cases = [
            ("127.0.0.1", "mx.khachhang.vn", "verified=yes"),
            ("127.0.0.2", None, "reason=forward_mismatch"),
            ("127.0.0.3", None, "reason=timeout"),
            ("127.0.0.4", None, "reason=no_ptr"),
            ("127.0.0.5", "mx5.khachhang.vn", "verified=yes"),
            ("127.0.0.6", None, "reason=malformed_name"),
            ("127.0.0.7", None, "reason=timeout"),
            ("::1", "mx6.khachhang.vn", "verified=yes"),
        ]
        for source, name, logged in cases:
            data = send(srv, source, "from " + source)
            want = "from helo.khachhang.vn (%s [%s])" % (name or "unknown", source)
            check(want in received_from(data),
                  "%s: Received: %r, expected %r" % (source, received_from(data), want))
            check(milter.macros.get("{client_name}") == (name or "unknown"),
                  "%s: milter {client_name} %r" % (source, milter.macros.get("{client_name}")))
            # Postfix sends an unknown name as "[ADDR]" in the connect step
            check(connect_hostname(milter) == (name or "[%s]" % source),
                  "%s: milter connect host name %r" % (source, connect_hostname(milter)))
            lines = [ln for ln in srv.log().splitlines()
                     if "event=client_name " in ln and "ip=%s " % source in ln]
            check(len(lines) == 1 and logged in lines[0],
                  "%s: log lines %r, expected %r" % (source, lines, logged))
        check(dns.queries.get((ptr("127.0.0.1"), T_PTR), 0) >= 1, "no PTR query seen")
        # the forward look-up is for the client's family only
        check(dns.queries.get(("mx.khachhang.vn", T_AAAA), 0) == 0,
              "AAAA asked for an IPv4 client")
        check(dns.queries.get(("mx6.khachhang.vn", T_A), 0) == 0, "A asked for an IPv6 client")
        check(dns.queries.get(("bad_name.khachhang.vn", T_A), 0) == 0,
              "a malformed name was looked up")
        # smtps: the TLS handshake and the look-up go on together, the
        # greeting waits for both
        for source, name in (("127.0.0.1", "mx.khachhang.vn"), ("127.0.0.3", "unknown")):
            data = send(srv, source, "smtps from " + source, smtps=True)
            want = "from helo.khachhang.vn (%s [%s])" % (name, source)
            check(want in received_from(data) and b"with ESMTPSA" in data[:600],
                  "smtps %s: Received: %r" % (source, received_from(data)))
        # a client that leaves during the look-up: no greeting, no trouble
        def leaver_lines():
            return [ln for ln in srv.log().splitlines()
                    if "event=client_name " in ln and "ip=127.0.0.3 " in ln]
        before = len(leaver_lines())
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=10,
                                     source_address=("127.0.0.3", 0))
        s.close()
        check(srv.wait_log("ip=127.0.0.3 messages=0"), "no disconnect of the early leaver")
        # past its look-up's deadline: cancelled, nothing logged for it
        time.sleep(1.5)
        check(len(leaver_lines()) == before, "the early leaver's look-up went on: %r"
              % leaver_lines()[before:])
        data = send(srv, "127.0.0.1", "after an early close")
        check("(mx.khachhang.vn [127.0.0.1])" in received_from(data), "name lost after close")
        check(srv.stop() == 0, "congvu-smtpd did not exit 0")
    finally:
        srv.cleanup()


def test_system_resolver():
    # no global.dns_server: loopback is "localhost" without any query;
    # resolv.conf may point anywhere, even to nothing reachable
    srv = Server(services=("smtp",), settings={"smtpd.reverse_dns_timeout": "30s"})
    try:
        srv.start()
        srv.add_account(DEMO)
        data = send(srv, "127.0.0.1", "system resolver")
        check("from helo.khachhang.vn (localhost [127.0.0.1])" in received_from(data),
              "loopback not named localhost: %r" % received_from(data))
        check("event=client_name " not in srv.log(), "a look-up was logged for loopback")
    finally:
        srv.cleanup()


def test_off(dns):
    srv = Server(services=("smtp",), settings={
        "global.dns_server": "127.0.0.1:%d" % dns.port, "smtpd.reverse_dns": "no"})
    try:
        srv.start()
        srv.add_account(DEMO)
        before = sum(dns.queries.values())
        data = send(srv, "127.0.0.1", "reverse dns off")
        check("(unknown [127.0.0.1])" in received_from(data),
              "reverse_dns = no named the client: %r" % received_from(data))
        check(sum(dns.queries.values()) == before, "reverse_dns = no still asked the DNS")
        # turned on by a reload: the workers make their resolver then
        srv.settings["smtpd.reverse_dns"] = "yes"
        srv.write_config()
        srv.proc.send_signal(signal.SIGHUP)
        check(srv.wait_log("event=reloaded process=worker", 2), "workers did not reload")
        data = send(srv, "127.0.0.1", "reverse dns on after reload")
        check("(mx.khachhang.vn [127.0.0.1])" in received_from(data),
              "reverse_dns = yes by reload: %r" % received_from(data))
    finally:
        srv.cleanup()


def main():
    dns = DnsServer(RECORDS, SILENT)
    dns.start()
    milter = ScriptedMilter()
    milter.start()
    try:
        test_with_server(dns, milter)
        test_system_resolver()
        test_off(dns)
    finally:
        milter.close()
        dns.close()
    print("OK")


if __name__ == "__main__":
    main()
