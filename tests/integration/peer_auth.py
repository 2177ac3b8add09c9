"""NARF.AUTH from a test: a raw RESP connection that proves the node role
as a data node's peer link does (datanode/peer_auth.h, docs/protocol.md
"Opening a link"), so tests can play a peer: write the stream by hand, or
prove a wrong key on purpose.

    link -> node   NARF.AUTH <node id> <nonce_c hex>
    node -> link   [<nonce_s hex>, <proof_s hex>]   (or an error)
    link -> node   NARF.AUTH <proof_c hex>
    node -> link   +OK
"""

import hmac
import os

from dn_harness import Err, HarnessError
from narf_harness import SECRET, coordping, role_key

# common/auth.c's transcript MAC, shared with the coordinator API's client
auth_mac = coordping.auth_mac

CTX = b"peer"


class StrangerError(HarnessError):
    """The node did not prove the node key (another secret, or none)."""


def node_key(secret=SECRET):
    """The node role's key of a cluster secret (the suite's by default)."""
    return role_key("node", secret)


def first_step(conn, node_id):
    """Send NARF.AUTH <node_id> <fresh nonce>; returns (nonce_c, reply)."""
    nonce_c = os.urandom(16)
    return nonce_c, conn.cmd("NARF.AUTH", node_id, nonce_c.hex())


def proof(key, node_id, nonce_c, nonce_s, direction=b"C"):
    """The MAC one side proves (direction b"C": the dialer's, b"S": the
    node's)."""
    return auth_mac(key, direction, "node", node_id, nonce_c, nonce_s, CTX)


def prove(conn, node_id, key=None, check_server=True):
    """Run NARF.AUTH on RawConn conn as node node_id, with the node key
    `key` (default: the suite's). Checks the node's proof first (unless
    check_server is False; StrangerError when it fails) and returns the
    reply to our proof ("OK" or an Err); an Err to the first step is
    returned as is."""
    key = key if key is not None else node_key()
    nonce_c, rep = first_step(conn, node_id)
    if isinstance(rep, Err):
        return rep
    if not (isinstance(rep, list) and len(rep) == 2):
        raise HarnessError("NARF.AUTH answered %r" % (rep,))
    nonce_s, mac_s = bytes.fromhex(rep[0].decode()), \
        bytes.fromhex(rep[1].decode())
    if check_server and not hmac.compare_digest(
            mac_s, proof(key, node_id, nonce_c, nonce_s, b"S")):
        raise StrangerError("the node on port %d did not prove the node "
                            "key" % conn.port)
    return conn.cmd("NARF.AUTH", proof(key, node_id, nonce_c, nonce_s).hex())


def peer_conn(conn, node_id, key=None):
    """conn, proven as node node_id's peer link (asserts +OK)."""
    rep = prove(conn, node_id, key)
    if rep != "OK":
        raise HarnessError("NARF.AUTH as node %s: %r" % (node_id, rep))
    return conn
