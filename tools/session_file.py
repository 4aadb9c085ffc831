"""A DTLS session kept in a file between runs of a host tool, as `openssl s_client -sess_out`
and `-sess_in` keep theirs (RFC 5246 §7.3: an abbreviated handshake resumes it).

The file holds the session's master secret and keys: whoever reads it can decrypt what the
session carried and resume it. It is written with mode 0600 (owner only) and replaced
atomically; keep it like the PSK itself. It also names the server and PSK identity it belongs
to, so it is never offered to another server or under another identity.
"""
import binascii
import json
import os

VERSION = 1


class SessionFileError(Exception):
    """The file cannot be used; the caller does a full handshake instead."""


def save(path, peer, identity, blob):
    """Writes the session blob (DtlsSession.save()) for `peer` ("host:port") and `identity`."""
    doc = {"format": "enosnb-dtls-session", "version": VERSION, "peer": peer,
           "identity": identity, "session": binascii.hexlify(blob).decode()}
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left by a crashed run
        with os.fdopen(fd, "w") as f:
            fd = None
            json.dump(doc, f)
            f.write("\n")
    finally:
        if fd is not None:
            os.close(fd)
    os.replace(tmp, path)


def load(path, peer, identity):
    """The session blob saved for `peer` and `identity`; None when there is no file yet.
    Raises SessionFileError (with what is wrong, never the contents) when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SessionFileError("session file %s is unreadable (%s)" % (
            path, e.__class__.__name__)) from None
    if not isinstance(doc, dict) or doc.get("format") != "enosnb-dtls-session" \
            or doc.get("version") != VERSION:
        raise SessionFileError("%s is not a session file of this tool" % path)
    if doc.get("peer") != peer or doc.get("identity") != identity:
        raise SessionFileError("session file %s belongs to another server or PSK identity"
                               % path)
    try:
        return binascii.unhexlify(doc.get("session") or "")
    except (binascii.Error, TypeError):
        raise SessionFileError("session file %s is damaged" % path) from None
