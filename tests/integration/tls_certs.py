"""Throwaway certificates for the TLS tests, made with the openssl
command-line tool (docs/security.md, "TLS", shows the same commands): a CA,
and certificates it signs for a server (subjectAltName 127.0.0.1), a client
(extendedKeyUsage clientAuth), or both (a coordinator presents one
certificate as server and as client)."""

import os
import subprocess

EXTENSIONS = {
    "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    "client": "extendedKeyUsage=clientAuth\n",
    "both": "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth,clientAuth\n",
}


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def make_ca(d, name):
    """d/name.crt and d/name.key: a self-signed CA."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".crt", "-days", "30", "-subj",
            "/CN=narf test " + name, cwd=d)


def make_cert(d, ca, name, cn, days="30", server=False, usage=None):
    """d/name.crt and d/name.key, signed by ca; usage "server", "client"
    or "both" (server=True is "server", the default "client")."""
    usage = usage or ("server" if server else "client")
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
            cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write(EXTENSIONS[usage])
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
            "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt",
            "-days", days, "-extfile", ext, cwd=d)


def serial_of(path):
    """The certificate's serial number as upper-case hex (openssl's
    `x509 -serial`, as Python's getpeercert() writes it)."""
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in",
                          path], check=True, capture_output=True,
                         timeout=60).stdout.decode()
    return out.strip().split("=", 1)[1].upper()
