"""Small JSON objects kept on flash across power-on resets (settings the device learns).

save() writes path + ".new", removes path, then renames (FAT's rename is not atomic, and it
fails when the target exists); load() takes path, else a whole path + ".new" left by a cut
between the remove and the rename. A cut at any point leaves the old or the new object.
"""
import json


def load(path):
    """The object saved at path, or {} when there is none (or only a torn write)."""
    import os
    for p in (path, path + ".new"):
        try:
            with open(p) as f:
                obj = json.loads(f.read())
        except (OSError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        if p != path:
            try:
                os.rename(p, path)
            except OSError:
                pass
        return obj
    return {}


def save(path, obj):
    import os
    with open(path + ".new", "w") as f:
        f.write(json.dumps(obj))
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(path + ".new", path)
