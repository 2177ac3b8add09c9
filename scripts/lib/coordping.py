#!/usr/bin/python3
"""Ping narf coordinators and wait for cluster states (docs/protocol.md).

The coordinator API is newline-delimited JSON over TCP: one request line, one
reply line. This helper is what scripts/cluster.sh and scripts/bench.sh use
to talk to it, so the polling logic lives in one place. It needs only the
Python standard library (run it with /usr/bin/python3).

    coordping.py HOST:PORT [HOST:PORT ...]
        Ping each address once and print one JSON line per address:
        {"addr": "...", "reachable": true, <the ping reply's fields>} or
        {"addr": "...", "reachable": false, "error": "..."}.
        Exit 0 when every address answered, 1 otherwise.
    coordping.py --wait-leader [--timeout S] HOST:PORT ...
        Poll until one address replies "role":"leader"; print its line.
    coordping.py --wait-up [--timeout S] HOST:PORT ...
        Poll until every address answers ping (any role); print the lines.
    coordping.py --wait-stable [--timeout S] HOST:PORT ...
        Poll until every address answers, exactly one is leader, all agree
        on its id and term, and every member has applied as far as the
        leader; print the lines.
    coordping.py --request JSON [--timeout S] HOST:PORT ...
        Send the request to the leader (following not_leader replies, and
        retrying not_ready and busy) and print the reply line.
    coordping.py --wait-ready N [--timeout S] HOST:PORT ...
        Poll the leader's status until N data nodes are up, every slot
        is assigned and nothing moves, syncs or waits to be rebalanced;
        print the status object.
    coordping.py --node-addr ID HOST:PORT ...
        Print the RESP address of data node ID from the leader's status.

Waits exit 1 with a message on stderr when --timeout (default 20 s) passes.

Every connection first proves the cluster secret (docs/protocol.md,
"Authentication"): the secret's file comes from NARF_SECRET_FILE, as for
cachecli (the file may also hold a data node's node key).

Coordinators started with --tls-cluster yes take TLS only (mutual TLS,
docs/security.md "TLS"): with NARF_TLS_DIR set to a directory holding
ca.crt, client.crt and client.key, every connection is TLS, verifying the
coordinator's certificate against ca.crt (not its host name: narf's
internal addresses are IP addresses) and presenting client.crt.
"""

import argparse
import hashlib
import hmac
import json
import os
import socket
import ssl
import sys
import time

MAX_REPLY = 64 << 20  # the protocol's reply limit for clients


def parse_addr(addr):
    """'host:port' -> (host, port); raises ValueError on a bad address."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("bad address %r (want HOST:PORT)" % addr)
    return host, int(port)


# --- the cluster secret's challenge-response (common/auth.c)

ROLE_CODES = {"operator": 1, "node": 2, "coord": 3}


def role_key(role, secret):
    """The key of role ("operator", "node", "coord") derived from a
    cluster secret (bytes), as common/auth.c derives it."""
    return hmac.new(secret, b"narf-auth-v1 key " + role.encode(),
                    hashlib.sha256).digest()


def auth_mac(key, direction, role, ident, nonce_c, nonce_s, ctx):
    """common/auth.c's transcript MAC (direction b"S" or b"C")."""
    msg = (direction + bytes([ROLE_CODES[role]]) +
           ident.to_bytes(8, "big") + nonce_c + nonce_s + ctx)
    return hmac.new(key, msg, hashlib.sha256).digest()


def credential_from_text(text):
    """(role, key) from a secret file's first line: a node key
    ("node:<hex>") proves the node role, a cluster secret the operator's."""
    line = text.splitlines()[0] if text else b""
    if line.startswith(b"node:"):
        return "node", bytes.fromhex(line[5:].decode())
    return "operator", role_key("operator", line)


def env_credential():
    """The credential of NARF_SECRET_FILE, or None when it is unset."""
    path = os.environ.get("NARF_SECRET_FILE")
    if not path:
        return None
    with open(path, "rb") as f:
        return credential_from_text(f.read())


def env_tls():
    """An ssl.SSLContext from NARF_TLS_DIR (ca.crt, client.crt,
    client.key), or None when it is unset."""
    d = os.environ.get("NARF_TLS_DIR")
    if not d:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    ctx.load_cert_chain(os.path.join(d, "client.crt"),
                        os.path.join(d, "client.key"))
    return ctx


class AuthError(ConnectionError):
    """The coordinator refused our credential or failed its own proof."""


def authenticate(request, role, key, ident=0):
    """Run the API's exchange over request(obj) -> reply; raises
    AuthError."""
    nonce_c = os.urandom(16)
    rep = request({"op": "auth", "role": role, "id": ident,
                   "nonce": nonce_c.hex()})
    if not rep.get("ok"):
        raise AuthError("credential refused: %s" % rep.get("message"))
    nonce_s = bytes.fromhex(rep["nonce"])
    want = auth_mac(key, b"S", role, ident, nonce_c, nonce_s, b"api")
    if not hmac.compare_digest(want, bytes.fromhex(rep["proof"])):
        raise AuthError("the coordinator failed to prove the secret")
    proof = auth_mac(key, b"C", role, ident, nonce_c, nonce_s, b"api")
    rep = request({"op": "auth", "proof": proof.hex()})
    if not rep.get("ok"):
        raise AuthError("proof refused: %s" % rep.get("message"))


class Conn:
    """One connection to a coordinator's API port; requests in order. It
    proves `credential` ((role, key); default NARF_SECRET_FILE's) first."""

    def __init__(self, addr, timeout=1.0, credential=None):
        self.addr = addr
        self.sock = socket.create_connection(parse_addr(addr), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = env_tls()
        if tls is not None:
            try:
                self.sock = tls.wrap_socket(self.sock)
            except BaseException:
                self.sock.close()
                raise
        self.buf = b""
        cred = credential or env_credential()
        if cred is not None:
            try:
                authenticate(lambda o: self.request(o, timeout), *cred)
            except BaseException:
                self.close()
                raise

    def request(self, obj, timeout=1.0):
        """Send one request object, return the reply object."""
        self.sock.settimeout(timeout)
        self.sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no reply within %.1f s" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
            if len(self.buf) > MAX_REPLY:
                raise ConnectionError("reply longer than 64 MiB")
        line, _, self.buf = self.buf.partition(b"\n")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ValueError("reply is not a JSON object")
        return reply

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(addr, obj, timeout=1.0):
    """One request on a fresh connection; returns the reply object."""
    conn = Conn(addr, timeout)
    try:
        return conn.request(obj, timeout)
    finally:
        conn.close()


def ping(addr, timeout=0.5):
    """Ping one address; always returns a dict with addr and reachable."""
    try:
        reply = request(addr, {"op": "ping"}, timeout)
    except (OSError, ValueError) as e:
        return {"addr": addr, "reachable": False, "error": str(e) or type(e).__name__}
    out = {"addr": addr, "reachable": True}
    out.update(reply)
    return out


def ping_all(addrs, timeout=0.5):
    return [ping(a, timeout) for a in addrs]


def find_leader(addrs, timeout=0.5):
    """The ping line of the member that says it leads, or None."""
    for line in ping_all(addrs, timeout):
        if line["reachable"] and line.get("role") == "leader":
            return line
    return None


def leader_request(addrs, obj, deadline):
    """Send obj to the leader until it answers something other than
    not_leader / not_ready / busy, or the deadline passes (returns None)."""
    hint = None
    while time.monotonic() < deadline:
        order = ([hint] if hint else []) + [a for a in addrs if a != hint]
        hint = None
        for addr in order:
            try:
                reply = request(addr, obj, 2.0)
            except (OSError, ValueError):
                continue
            err = reply.get("error")
            if reply.get("ok") or err not in ("not_leader", "not_ready", "busy"):
                return reply
            if err == "not_leader" and reply.get("leader"):
                hint = reply["leader"]
                break
        time.sleep(0.05)
    return None


def emit(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def stable(lines):
    """Every member reachable, one leader, all agreeing, all caught up."""
    if not all(x["reachable"] for x in lines):
        return False
    leaders = [x for x in lines if x.get("role") == "leader"]
    if len(leaders) != 1:
        return False
    lead = leaders[0]
    for x in lines:
        if x.get("leader") != lead.get("id") or x.get("term") != lead.get("term"):
            return False
        if x.get("applied", 0) < lead.get("applied", 0):
            return False
    return True


def ready(status, nodes):
    """N nodes up, every slot assigned, and the placement settled: nothing
    moving or syncing and nothing left to rebalance (a new cluster places
    its slots in waves of handoffs; a benchmark must not race them)."""
    up = [n for n in status.get("nodes", []) if n.get("state") == "up"]
    slots = status.get("slots", {})
    rebalance = status.get("rebalance", {})
    return (len(up) >= nodes and slots.get("assigned") == 16384
            and not slots.get("unassigned") and not slots.get("moving")
            and not slots.get("syncing")
            and not rebalance.get("remaining"))


def main(argv):
    ap = argparse.ArgumentParser(
        description="Ping narf coordinators (newline-delimited JSON API).",
        epilog="See the module docstring (head of this file) for details.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--wait-leader", action="store_true",
                      help="poll until one address is leader; print its line")
    mode.add_argument("--wait-up", action="store_true",
                      help="poll until every address answers ping")
    mode.add_argument("--wait-stable", action="store_true",
                      help="poll until all answer, agree on one leader and are caught up")
    mode.add_argument("--request", metavar="JSON",
                      help="send JSON to the leader and print its reply")
    mode.add_argument("--wait-ready", metavar="N", type=int,
                      help="poll the leader's status until N data nodes are up, all slots assigned and the placement settled")
    mode.add_argument("--node-addr", metavar="ID", type=int,
                      help="print the RESP address of data node ID")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds to wait (default 20)")
    ap.add_argument("addrs", nargs="+", metavar="HOST:PORT")
    args = ap.parse_args(argv)

    try:
        for a in args.addrs:
            parse_addr(a)
    except ValueError as e:
        ap.error(str(e))
    deadline = time.monotonic() + args.timeout

    if args.request is not None or args.wait_ready is not None or args.node_addr is not None:
        if args.request is not None:
            try:
                obj = json.loads(args.request)
            except ValueError as e:
                ap.error("--request: %s" % e)
        else:
            obj = {"op": "status"}
        while True:
            reply = leader_request(args.addrs, obj, deadline)
            if reply is None:
                print("coordping: no leader answered within %.0f s" % args.timeout,
                      file=sys.stderr)
                return 1
            if args.request is not None:
                emit(reply)
                return 0 if reply.get("ok") else 1
            status = reply.get("status")
            if not reply.get("ok") or not isinstance(status, dict):
                print("coordping: status failed: %s" % json.dumps(reply), file=sys.stderr)
                return 1
            if args.node_addr is not None:
                for n in status.get("nodes", []):
                    if n.get("id") == args.node_addr:
                        print(n.get("addr", ""))
                        return 0
                print("coordping: no data node %d in the map" % args.node_addr,
                      file=sys.stderr)
                return 1
            if ready(status, args.wait_ready):
                emit(status)
                return 0
            if time.monotonic() >= deadline:
                print("coordping: cluster not ready within %.0f s: %s"
                      % (args.timeout, json.dumps(status.get("slots"))), file=sys.stderr)
                return 1
            time.sleep(0.1)

    if not (args.wait_leader or args.wait_up or args.wait_stable):
        lines = ping_all(args.addrs, min(args.timeout, 2.0))
        for line in lines:
            emit(line)
        return 0 if all(x["reachable"] for x in lines) else 1

    while True:
        lines = ping_all(args.addrs)
        if args.wait_leader:
            lead = [x for x in lines if x["reachable"] and x.get("role") == "leader"]
            if lead:
                emit(lead[0])
                return 0
            what = "no leader elected"
        elif args.wait_up:
            if all(x["reachable"] for x in lines):
                for line in lines:
                    emit(line)
                return 0
            what = "not every coordinator answers ping"
        else:
            if stable(lines):
                for line in lines:
                    emit(line)
                return 0
            what = "cluster not stable"
        if time.monotonic() >= deadline:
            print("coordping: %s within %.0f s" % (what, args.timeout), file=sys.stderr)
            for line in lines:
                print("  " + json.dumps(line, separators=(",", ":")), file=sys.stderr)
            return 1
        time.sleep(0.05)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
