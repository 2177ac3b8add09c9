"""Users and permissions on the data port (docs/security.md, "Users"),
with the same assertions against redis-server (Debian's 7.0, given the
equivalent ACL users) and narf (a users file): AUTH user password, HELLO 2
AUTH, and what each permission may run.
"""

import pytest

from dn_fixtures import kind, make_server  # noqa: F401
from dn_harness import Err

USERS = [("reader", "read", "reader-pw-0123456789"),
         ("writer", "readwrite", "writer-pw-0123456789"),
         ("boss", "admin", "boss-pw-0123456789")]
WRONGPASS = Err("WRONGPASS invalid username-password pair or user is "
                "disabled.")


def noperm(name):
    return Err("NOPERM this user has no permissions to run the '%s' "
               "command" % name)


@pytest.fixture
def usrv(make_server, kind):
    return make_server(kind, users=USERS)


def login(srv, user):
    c = srv.raw(auth=False)
    name, _, pw = next(u for u in USERS if u[0] == user)
    assert c.cmd("AUTH", name, pw) == "OK"
    return c


def test_each_permission_runs_what_it_may(usrv):
    """read reads, readwrite writes but may not flush or configure, admin
    does everything; refusals are NOPERM with Redis's words and change
    nothing."""
    w = login(usrv, "writer")
    assert w.cmd("SET", "k", "v1") == "OK"
    assert w.cmd("FLUSHALL") == noperm("flushall")
    assert w.cmd("CONFIG", "GET", "maxmemory") == noperm("config|get")
    r = login(usrv, "reader")
    assert r.cmd("GET", "k") == b"v1"
    assert r.cmd("SET", "k", "v2") == noperm("set")
    assert r.cmd("DEL", "k") == noperm("del")
    assert r.cmd("PING") == "PONG"
    assert r.cmd("GET", "k") == b"v1"
    b = login(usrv, "boss")
    assert b.cmd("CONFIG", "GET", "maxmemory")[0] == b"maxmemory"
    assert b.cmd("FLUSHALL") == "OK"
    assert b.cmd("GET", "k") is None
    for c in (w, r, b):
        c.close()


def test_wrong_passwords_and_unknown_users(usrv):
    """A wrong password, an unknown user, another user's password and the
    default user (disabled when users are set without a default password)
    all get WRONGPASS, and the connection stays unauthenticated."""
    c = usrv.raw(auth=False)
    assert c.cmd("AUTH", "reader", "writer-pw-0123456789") == WRONGPASS
    assert c.cmd("AUTH", "nobody", "x") == WRONGPASS
    assert c.cmd("AUTH", "reader", "") == WRONGPASS
    assert c.cmd("AUTH", "default", "x") == WRONGPASS
    assert c.cmd("GET", "k") == Err("NOAUTH Authentication required.")
    assert c.cmd("AUTH", "reader", "reader-pw-0123456789") == "OK"
    assert c.cmd("GET", "k") is None
    c.close()


def test_hello_auth_and_reauth(usrv):
    """HELLO 2 AUTH user password logs in; a second AUTH as another user
    takes that user's permission, and a failed AUTH keeps the one it had."""
    c = usrv.raw(auth=False)
    rep = c.cmd("HELLO", "2", "AUTH", "reader", "reader-pw-0123456789")
    assert isinstance(rep, list) and b"proto" in rep
    assert c.cmd("SET", "k", "1") == noperm("set")
    assert c.cmd("AUTH", "writer", "writer-pw-0123456789") == "OK"
    assert c.cmd("SET", "k", "1") == "OK"
    assert c.cmd("AUTH", "boss", "nope") == WRONGPASS
    assert c.cmd("SET", "k", "2") == "OK"
    assert c.cmd("FLUSHALL") == noperm("flushall")
    c.close()


def test_default_user_with_a_password_beside_users(make_server, kind):
    """With a default password as well, AUTH password is the default user
    with every permission; the users keep theirs."""
    srv = make_server(kind, users=USERS, password="default-pw-01234")
    c = srv.raw(auth=False)
    assert c.cmd("AUTH", "default-pw-01234") == "OK"
    assert c.cmd("FLUSHALL") == "OK"
    assert c.cmd("AUTH", "reader", "reader-pw-0123456789") == "OK"
    assert c.cmd("SET", "k", "1") == noperm("set")
    c.close()


def test_bad_users_file_is_refused_at_start(make_server, tmp_path):
    """A malformed users file stops the data node at start with the line
    that is wrong (exit 2), before it serves anything."""
    import subprocess
    from dn_fixtures import datanode_binary
    bad = tmp_path / "users"
    bad.write_text("reader read sha256$00$11\n")
    out = subprocess.run([datanode_binary(), "--standalone", "--port", "1",
                          "--users-file", str(bad)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 2
    assert "line 1" in out.stderr and "password hash" in out.stderr


def test_cluster_with_users_and_cachecli(make_cluster, build_dir, tmp_path,
                                        monkeypatch):
    """A cluster whose data nodes take users: replication between them is
    unaffected (peers prove the node key, not a user), cachecli with --user
    and --password-file (or NARF_PASSWORD) reads and writes by its
    permission, and without a password says why."""
    import os
    import subprocess
    import cluster_harness
    from dn_harness import DataNode as Standalone
    monkeypatch.setattr(cluster_harness, "DATA_AUTH",
                        ("reader", "reader-pw-0123456789"))
    users = Standalone.users_file(
        type("W", (), {"tmpdir": str(tmp_path), "name": "cl"})(), USERS)
    c = make_cluster(nodes=2, node_args={0: ["--users-file", users],
                                         1: ["--users-file", users]})
    cli = os.path.join(build_dir, "cli", "cachecli")
    coord = ",".join(c.trio.apis)
    pw = tmp_path / "writer.pw"
    pw.write_text("writer-pw-0123456789\n")

    def run(*args, env=None):
        return subprocess.run([cli, "--coord", coord] + list(args),
                              capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, **(env or {})))
    p = run("--user", "writer", "--password-file", str(pw), "set", "k",
            "v1")
    assert p.returncode == 0, p.stderr
    p = run("--user", "reader", "get", "k",
            env={"NARF_PASSWORD": "reader-pw-0123456789"})
    assert (p.returncode, p.stdout.strip()) == (0, "v1"), p.stderr
    p = run("--user", "reader", "set", "k", "v2",
            env={"NARF_PASSWORD": "reader-pw-0123456789"})
    assert p.returncode == 1 and "NOPERM" in p.stderr, p.stderr
    p = run("get", "k")
    assert p.returncode != 0 and "NOAUTH" in p.stderr, p.stderr
    p = run("--user", "reader", "get", "k", env={"NARF_PASSWORD": "wrong"})
    assert p.returncode == 1 and "WRONGPASS" in p.stderr, p.stderr
    # Every slot kept its replica in sync through all this.
    c.wait_ready(20.0)


def test_sighup_reloads_users_and_password(make_server, tmp_path):
    """SIGHUP reads the users file and the password file again: a new user
    logs in, a removed one no longer does, a connection already logged in
    stays so; a file that no longer parses keeps the users in use."""
    import signal
    import time
    srv = make_server("narf", users=USERS[:1], password="first-pw-0123456",
                      password_via="file")
    users_path = [a for a in srv.argv() if a.endswith(".users")][0]
    kept = srv.raw(auth=False)
    assert kept.cmd("AUTH", "reader", "reader-pw-0123456789") == "OK"
    srv.users_file(USERS[1:2])  # rewrites the same path: writer only
    with open(srv.password_file, "w") as f:
        f.write("second-pw-0123456\n")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    c = srv.raw(auth=False)
    assert c.cmd("AUTH", "reader", "reader-pw-0123456789") == WRONGPASS
    assert c.cmd("AUTH", "writer", "writer-pw-0123456789") == "OK"
    assert c.cmd("AUTH", "first-pw-0123456") == WRONGPASS
    assert c.cmd("AUTH", "second-pw-0123456") == "OK"
    assert kept.cmd("GET", "k") is None  # still logged in as reader
    with open(users_path, "w") as f:
        f.write("broken line\n")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    c2 = srv.raw(auth=False)
    assert c2.cmd("AUTH", "writer", "writer-pw-0123456789") == "OK"
    assert "keeping the users in use" in srv.log_text()
    for x in (kept, c, c2):
        x.close()
