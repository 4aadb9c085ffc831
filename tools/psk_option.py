"""How the host command-line tools (coap_client.py, dtls_client.py) take a pre-shared key.

One rule for both, shown in their --help and named (never the key) in their -v output:

  KEY is read as hex when it starts with 0x or hex:, or when it is an even number of hex
  digits (as `openssl s_client -psk` reads it); as text when it starts with text:, or when it
  is anything else (as libcoap's `coap-client -k` reads it).

The key comes from the first of: the key option (seen by `ps` and the shell history: for
trying things out), the key-file option (a file that only you can read; surrounding
whitespace and the final newline are ignored) or the environment variable ENOSNB_PSK_KEY.
"""
import binascii
import os

ENV_VAR = "ENOSNB_PSK_KEY"
RULE = ("KEY is hex when it starts with 0x or hex: or is an even number of hex digits (as "
        "openssl reads -psk), text when it starts with text: or is anything else (as libcoap's "
        "coap-client reads -k)")
_HEX = "0123456789abcdefABCDEF"


class PskError(Exception):
    """A key that cannot be read; the message never contains the key."""


def parse_key(text):
    """The key bytes and how they were read ("hex" or "text"), by RULE."""
    low = text.lower()
    if low.startswith("text:"):
        key, how = text[5:].encode(), "text"
    elif low.startswith(("0x", "hex:")):
        digits = text[2:] if low.startswith("0x") else text[4:]
        if not digits or len(digits) % 2 or any(c not in _HEX for c in digits):
            raise PskError("the key after the 0x or hex: prefix must be an even number of "
                           "hex digits")
        key, how = binascii.unhexlify(digits), "hex"
    elif text and len(text) % 2 == 0 and all(c in _HEX for c in text):
        key, how = binascii.unhexlify(text), "hex"
    else:
        key, how = text.encode(), "text"
    if not key:
        raise PskError("the key is empty")
    return key, how


def add_arguments(parser, key_flags=("--psk-key",), file_flags=("--psk-key-file",), what=""):
    """Adds the key and key-file options to an argparse parser (dest psk_key, psk_key_file)."""
    parser.add_argument(*key_flags, dest="psk_key", metavar="KEY",
                        help="DTLS PSK%s on the command line (ps and the shell history see "
                             "it: prefer --psk-key-file or $%s). %s" % (what, ENV_VAR, RULE))
    parser.add_argument(*file_flags, dest="psk_key_file", metavar="FILE",
                        help="read the PSK from FILE (mode 0600), same notation as KEY")


def read_key(args, environ=None):
    """(key bytes, description) from args.psk_key, args.psk_key_file or $ENOSNB_PSK_KEY, or
    (None, None) when none is given. The description names the source and the notation,
    for -v: e.g. "16 bytes read as hex from --psk-key-file". Raises PskError."""
    environ = os.environ if environ is None else environ
    if args.psk_key is not None and args.psk_key_file is not None:
        raise PskError("give the PSK either on the command line or in a file, not both")
    if args.psk_key is not None:
        text, source = args.psk_key, "the command line"
    elif args.psk_key_file is not None:
        try:
            with open(args.psk_key_file, encoding="utf-8") as f:
                text = f.read().strip()
        except (OSError, UnicodeError) as e:
            raise PskError("cannot read the PSK file %s: %s" % (
                args.psk_key_file, getattr(e, "strerror", None) or e.__class__.__name__)) from None
        source = "--psk-key-file"
    elif environ.get(ENV_VAR):
        text, source = environ[ENV_VAR], "$" + ENV_VAR
    else:
        return None, None
    key, how = parse_key(text)
    return key, "%d bytes read as %s from %s" % (len(key), how, source)


def loose_permissions(path):
    """True when a key or session file can be read by other users."""
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError:
        return False
