"""Network helpers the integration tests share: a free port, waiting for a
listener, stopping a child process, and dnsmasq as a DNS server answering
only from its command line. Python standard library only."""

import os
import socket
import subprocess
import time


def free_port(host="127.0.0.1"):
    """A TCP port free on host right now."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(host, port, timeout=20.0, proc=None):
    """True once something accepts connections on host:port; False after
    timeout seconds or as soon as proc (if given) has exited."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL when proc has not exited after timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raise(msg):
    raise RuntimeError(msg)


class Dnsmasq:
    """dnsmasq (exe) on 127.0.0.1:PORT answering only from its command line:
    zones answered locally (NXDOMAIN for other names in them), mx a list of
    (domain, host, preference), hosts of (name, ip), txt of (name, text).
    Logs into directory/dnsmasq.log. self.server is "127.0.0.1:PORT"."""

    def __init__(self, exe, directory, zones=(), mx=(), hosts=(), txt=(), fail=_raise):
        # a free TCP port may still be taken for UDP: try a few
        for _ in range(5):
            self.port = free_port()
            args = [exe, "-k", "--no-resolv", "--no-hosts", "--no-poll", "--conf-file=/dev/null",
                    "--port=%d" % self.port, "--listen-address=127.0.0.1", "--bind-interfaces",
                    "--pid-file=", "--log-facility=" + os.path.join(directory, "dnsmasq.log")]
            if os.geteuid() == 0:
                args.append("--user=root")
            args += ["--local=/%s/" % z for z in zones]
            args += ["--mx-host=%s,%s,%d" % (d, h, p) for d, h, p in mx]
            args += ["--host-record=%s,%s" % (name, ip) for name, ip in hosts]
            args += ["--txt-record=%s,%s" % (name, text) for name, text in txt]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            # dnsmasq listens on UDP and TCP; TCP tells us it is up
            if wait_port("127.0.0.1", self.port, 10, self.proc):
                break
            self.stop()
        else:
            fail("dnsmasq did not start")
        self.server = "127.0.0.1:%d" % self.port

    def stop(self):
        stop_process(self.proc)
