"""DANE (RFC 7672) against a real Postfix as the remote MX: NSD serves
DNSSEC-signed zones (signed by the test with ldns-signzone), libunbound
validates them with the zones' keys as trust anchors
(smtpd.dnssec_trust_anchor).
 1. quangninh.gov.vn publishes TLSA 3 1 1 of the MX's key: delivered over TLS
    matched against the record, though no CA vouches for the certificate;
 2. hanoi.gov.vn publishes a TLSA record that does not match: the mail stays
    queued and the remote never sees it;
 3. dalat.gov.vn is signed but has no TLSA record: delivered as before;
 4. hue.gov.vn answers with a forged address (signature mismatch): DNSSEC
    validation fails and the mail waits instead of going anywhere."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outbound_common as oc  # noqa: E402
import smtpd_common as sc  # noqa: E402

D, D2, D3, D4 = oc.REMOTE_DOMAIN, "hanoi.gov.vn", "dalat.gov.vn", "hue.gov.vn"
SENDER = "demo@" + sc.DOMAIN


def main():
    tmp = tempfile.mkdtemp(prefix="congvu-outbound-dane-")
    os.chmod(tmp, 0o755)
    server = dns = pf = None
    try:
        os.makedirs(os.path.join(tmp, "pf"))
        pf = oc.Postfix(os.path.join(tmp, "pf"), starttls=True, cert_name="mx." + D,
                        domains=(D, D2, D3, D4))
        digest = oc.spki_sha256(pf.cert)
        wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
        dns = oc.SignedDns(tmp, {
            D: ["@ IN MX 10 mx", "mx IN A " + oc.REMOTE_IP,
                "_%d._tcp.mx IN TLSA 3 1 1 %s" % (pf.port, digest)],
            D2: ["@ IN MX 10 mx", "mx IN A " + oc.REMOTE_IP,
                 "_%d._tcp.mx IN TLSA 3 1 1 %s" % (pf.port, wrong)],
            D3: ["@ IN MX 10 mx", "mx IN A " + oc.REMOTE_IP],
            D4: ["@ IN MX 10 mx", "mx IN A " + oc.REMOTE_IP],
        }, tamper={D4: ("IN\tA\t" + oc.REMOTE_IP, "IN\tA\t127.0.0.9")})
        pf.start()
        server = oc.congvu(dns, {"smtpd.outbound_port": str(pf.port),
                                 "smtpd.dnssec_trust_anchor": dns.trust_anchor})
        server.add_account(SENDER)
        server.start()

        # 1. matching TLSA: delivered, authenticated by DANE
        oc.send(server, SENDER, ["alice@" + D], "dane one")
        got = pf.wait_delivered(1)
        log = server.log()
        sc.check(len(got) == 1, "delivered under DANE:\n" + log)
        sc.check("event=dane " in log and "host=mx.%s tlsa=1 usable=1" % D in log,
                 "the TLSA record was found and validated:\n" + log)
        sc.check("verified=yes dane=tlsa" in log, "the certificate matched the record:\n" + log)

        # 2. a TLSA record that does not match: held
        oc.send(server, SENDER, ["bob@" + D2], "dane two")

        def held():
            q = oc.queue_list(server)
            return q if q and q[0][3] == "deferred" and "verif" in q[0][5] else None
        sc.check(oc.wait_for(held) is not None, "held by DANE: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check("verified=no dane=tlsa" in server.log(), "the mismatch is logged")
        sc.check(len(pf.delivered()) == 1, "nothing sent to the unauthenticated server")
        oc.queue_cmd(server, "delete", oc.queue_list(server)[0][0])

        # 3. signed, no TLSA: opportunistic as before
        oc.send(server, SENDER, ["carol@" + D3], "dane three")
        got = pf.wait_delivered(2)
        sc.check(len(got) == 2, "delivered without TLSA records:\n" + server.log())
        sc.check("host=mx.%s" % D3 not in server.log(), "no DANE without TLSA records")
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty")

        # 4. a forged answer: validation fails, the mail waits
        oc.send(server, SENDER, ["dan@" + D4], "dane four")

        def bogus():
            q = oc.queue_list(server)
            return q if q and q[0][3] == "deferred" and "DNSSEC" in q[0][5] else None
        sc.check(oc.wait_for(bogus) is not None, "held on a DNSSEC failure: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check(len(pf.delivered()) == 2, "nothing sent on a forged answer")
        print("outbound dane: ok")
    finally:
        oc.teardown(lambda: server and server.cleanup(),
                    lambda: pf and pf.stop(),
                    lambda: dns and dns.stop(),
                    lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == "__main__":
    main()
