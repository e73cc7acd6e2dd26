"""MTA-STS (RFC 8461) against a real Postfix as the remote MX: dnsmasq
publishes _mta-sts TXT records, a local HTTPS server (its certificate from
a test CA given in smtpd.outbound_ca_file) serves the policies.
 1. quangninh.gov.vn, mode enforce, naming its MX: delivered over verified
    TLS although smtpd.tls_policy says nothing about the domain;
 2. hanoi.gov.vn, mode enforce, naming another host: the mail stays queued
    (no MX matches, 4.7.4) and the remote never sees it;
 3. a domain without a TXT record: delivered as before (opportunistic);
 4. the policies outlive a restart (RFC 8461 5.1): with the policy server
    gone, hanoi.gov.vn mail is still held."""

import http.server
import os
import shutil
import ssl
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outbound_common as oc  # noqa: E402
import smtpd_common as sc  # noqa: E402

D = oc.REMOTE_DOMAIN
D2 = "hanoi.gov.vn"
D3 = "dalat.gov.vn"
SENDER = "demo@" + sc.DOMAIN
POLICY_IP = "127.0.0.3"
POLICIES = {
    "mta-sts." + D: "version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 86400\r\n" % oc.REMOTE_MX,
    "mta-sts." + D2: "version: STSv1\r\nmode: enforce\r\nmx: *.elsewhere.vn\r\nmax_age: 86400\r\n",
}
FETCHES = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        FETCHES.append((host, self.path))
        body = POLICIES.get(host)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    tmp = tempfile.mkdtemp(prefix="congvu-outbound-sts-")
    os.chmod(tmp, 0o755)
    server = dns = pf = httpd = None
    try:
        # the policy server, with a certificate for both policy hosts
        cert, key = oc.make_cert_for(tmp, "mta-sts." + D, extra=("mta-sts." + D2,), base="sts")
        port = oc.free_port_on(POLICY_IP)
        httpd = http.server.ThreadingHTTPServer((POLICY_IP, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

        dns = oc.Dns(tmp, mx=[(D, oc.REMOTE_MX, 10), (D2, oc.REMOTE_MX, 10),
                              (D3, oc.REMOTE_MX, 10)],
                     hosts=[(oc.REMOTE_MX, oc.REMOTE_IP), ("mta-sts." + D, POLICY_IP),
                            ("mta-sts." + D2, POLICY_IP)],
                     zones=(D, D2, D3),
                     txt_records=[("_mta-sts." + D, "v=STSv1; id=20261127"),
                                  ("_mta-sts." + D2, "v=STSv1; id=1")])
        os.makedirs(os.path.join(tmp, "pf"))
        pf = oc.Postfix(os.path.join(tmp, "pf"), starttls=True, cert_name=oc.REMOTE_MX,
                        domains=(D, D2, D3))
        pf.start()
        bundle = os.path.join(tmp, "ca.pem")
        with open(bundle, "w") as out:
            for f in (cert, pf.cert):
                with open(f) as src:
                    out.write(src.read())
        server = oc.congvu(dns, {"smtpd.outbound_port": str(pf.port),
                                 "smtpd.mta_sts_port": str(port),
                                 "smtpd.outbound_ca_file": bundle})
        server.add_account(SENDER)
        server.start()

        # 1. enforce, matching MX: verified TLS
        oc.send(server, SENDER, ["alice@" + D], "sts one")
        got = pf.wait_delivered(1)
        log = server.log()
        sc.check(len(got) == 1, "delivered under the policy:\n" + log)
        sc.check(("mta-sts." + D, "/.well-known/mta-sts.txt") in FETCHES,
                 "the policy was fetched over HTTPS: %r" % FETCHES)
        sc.check("event=mta_sts domain=%s id=20261127 mode=enforce" % D in log,
                 "the policy is logged:\n" + log)
        sc.check("source=mta-sts" in log and "verified=yes" in log,
                 "TLS verified because of the policy:\n" + log)

        # 2. enforce, no MX matches: held
        oc.send(server, SENDER, ["bob@" + D2], "sts two")

        def held():
            q = oc.queue_list(server)
            return q if q and q[0][3] == "deferred" and "MTA-STS" in q[0][5] else None
        sc.check(oc.wait_for(held) is not None, "held by the policy: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check("event=mta_sts_mx_mismatch" in server.log(), "the mismatch is logged")
        sc.check(len(pf.delivered()) == 1, "nothing sent to a host the policy does not name")
        oc.queue_cmd(server, "delete", oc.queue_list(server)[0][0])

        # 3. no policy: as before
        oc.send(server, SENDER, ["carol@" + D3], "sts three")
        got = pf.wait_delivered(2)
        sc.check(len(got) == 2, "a domain without MTA-STS is delivered:\n" + server.log())
        sc.check(oc.wait_for(lambda: oc.queue_list(server) == []), "queue empty")
        # the policy is cached: one fetch for quangninh however many messages
        oc.send(server, SENDER, ["dave@" + D], "sts four")
        sc.check(len(pf.wait_delivered(3)) == 3, "second message under the cached policy")
        sc.check(FETCHES.count(("mta-sts." + D, "/.well-known/mta-sts.txt")) == 1,
                 "the policy is fetched once: %r" % FETCHES)

        # 4. restart without the policy server: the cached policies hold
        sc.check(server.stop() == 0, "clean stop")
        httpd.shutdown()
        httpd.server_close()
        httpd = None
        fetched = len(FETCHES)
        server.start()
        oc.send(server, SENDER, ["eve@" + D2], "sts five")
        sc.check(oc.wait_for(held) is not None, "still held after the restart: %r\n%s"
                 % (oc.queue_list(server), server.log()))
        sc.check("event=mta_sts_cache_loaded policies=2" in server.log(),
                 "both policies loaded:\n" + server.log())
        sc.check(len(FETCHES) == fetched, "no fetch needed")
        print("outbound mta-sts: ok")
    finally:
        oc.teardown(lambda: server and server.cleanup(),
                    lambda: httpd and (httpd.shutdown(), httpd.server_close()),
                    lambda: pf and pf.stop(),
                    lambda: dns and dns.stop(),
                    lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == "__main__":
    main()
