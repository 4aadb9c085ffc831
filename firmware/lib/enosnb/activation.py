"""Per-product activation (enos-coap.md §7 step 5): the deviceSecret EnOS hands a device
that has only the productSecret is kept on flash (device_secret.json) and used from then on.
Loaded only by devices without a deviceSecret in secrets.json.
"""
import json
import os

SECRET_FILE = "device_secret.json"


def secret(app):
    """The activated deviceSecret kept on flash, or None."""
    # The .tmp copy covers a power cut between removing the old file and the rename
    # (FAT cannot rename over an existing file).
    path = app._path(SECRET_FILE)
    for p in (path, path + ".tmp"):
        try:
            with open(p) as f:
                v = json.loads(f.read()).get("deviceSecret")
            if isinstance(v, str) and v:
                return v
        except (OSError, ValueError, AttributeError):
            pass
    return None


def persist(app, value):
    """Keeps the deviceSecret EnOS handed out (power-cut safe); OSError when it did not
    read back."""
    path = app._path(SECRET_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps({"deviceSecret": value}))
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(path + ".tmp", path)
    if secret(app) != value:
        raise OSError("activated deviceSecret did not read back from flash")
