"""What the local server refuses, as EnOS documents CoAP (enos-coap.md §9, §10, §18).

EnOS's protocol comparison page lists "batch reporting of measurement points and offline
measurement points" as not offered over CoAP. So by default (strict) the server refuses
thing.measurepoint.post.batch and thing.measurepoint.resume.batch, and single
thing.measurepoint.resume as well; the page leaves single resume ambiguous, so `resume`
"accept" takes it. EnOS does not document how it says "unsupported"; every answer it might
give is selectable (`unsupported`):

    4.04, 4.05, 4.03     that CoAP code, no body
    1250, 1260, 1009     2.04 with that JSON code (unknown method, method mismatch, no write
                         permission)
    none                 no answer: aiocoap acknowledges the CON (an empty ACK) and no
                         response follows, so the device's exchange times out

More switches: omit_id (replies without `id`, which EnOS documents as optional);
login_1009 (a plain-mode request without a valid /auth gets 2.04 with code 1009 instead of
4.01: EnOS's 1009 also means "not logged in"); thing models per device ({pk/dk: {"measurepoints":
{name: type}, "attributes": {name: type}}}, type one of int, float, number, string, bool,
array, object, any): a point or attribute the model lacks, or of another type, gets 1204.
A device without a model takes any point.

lenient=True restores the permissive behaviour: every topic accepted, ids always present,
4.01 without a login, no models.

Faults for soak runs, set at run time (counts of requests they still apply to):
unavailable (answered 5.03), malformed (2.04 whose JSON body is cut short).
"""
import json

UNSUPPORTED = ("4.04", "4.05", "4.03", "1250", "1260", "1009", "none")
REFUSED_STRICT = ("thing/measurepoint/post/batch", "thing/measurepoint/resume/batch")
RESUME = "thing/measurepoint/resume"
MODEL_TYPES = ("int", "float", "number", "string", "bool", "array", "object", "any")


class PolicyError(ValueError):
    pass


def _type_ok(kind, v):
    if isinstance(v, dict) and "value" in v:  # a point with quality
        v = v["value"]
    if kind == "any":
        return True
    if kind == "bool":
        return isinstance(v, bool)
    if isinstance(v, bool):
        return False
    if kind == "int":
        return isinstance(v, int)
    if kind in ("float", "number"):
        return isinstance(v, (int, float))
    if kind == "string":
        return isinstance(v, str)
    if kind == "array":
        return isinstance(v, list)
    return isinstance(v, dict)


def check_model(model):
    """A thing model as the server takes it, or PolicyError naming what is wrong."""
    if not isinstance(model, dict):
        raise PolicyError("a thing model is an object with measurepoints and attributes")
    out = {}
    for part in ("measurepoints", "attributes"):
        fields = model.get(part, {})
        if not isinstance(fields, dict) or not all(t in MODEL_TYPES for t in fields.values()):
            raise PolicyError("%s must map names to one of %s" % (part, ", ".join(MODEL_TYPES)))
        out[part] = dict(fields)
    return out


_TEMPLATE_TYPES = {"INT": "int", "FLOAT": "number", "DOUBLE": "number", "STRING": "string",
                   "BOOL": "bool", "ARRAY": "array", "STRUCT": "object", "ENUM": "any",
                   "DATE": "any", "TIMESTAMP": "any", "FILE": "any"}


def model_from_template(path):
    """The server's form of an EnOS thing model file (firmware/thing-model.json)."""
    with open(path) as f:
        tm = json.load(f)
    return check_model({part: {k: _TEMPLATE_TYPES.get(el.get("dataType"), "any")
                               for k, el in tm.get(part, {}).items()}
                        for part in ("measurepoints", "attributes")})


class Policy:
    def __init__(self, lenient=False, resume="refuse", unsupported="4.04", omit_id=False,
                 login_1009=False, models=None):
        if resume not in ("refuse", "accept"):
            raise PolicyError('resume is "refuse" or "accept"')
        if unsupported not in UNSUPPORTED:
            raise PolicyError("unsupported is one of " + ", ".join(UNSUPPORTED))
        self.lenient = lenient
        self.resume = resume
        self.unsupported = unsupported
        self.omit_id = omit_id
        self.login_1009 = login_1009
        self.models = {}
        for key, model in (models or {}).items():
            self.set_model(key, model)
        self.unavailable = 0
        self.malformed = 0
        self.refused = 0

    def set_model(self, key, model):
        """key: (pk, dk) or "pk/dk"; model None removes it."""
        if isinstance(key, str):
            key = tuple(key.split("/", 1))
        if model is None:
            self.models.pop(key, None)
        else:
            self.models[key] = check_model(model)

    @classmethod
    def load_models(cls, path):
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise PolicyError("the models file maps \"pk/dk\" to a thing model")
        return {k: check_model(v) for k, v in data.items()}

    def refuses(self, suffix):
        """True when EnOS does not offer this uplink topic over CoAP (strict)."""
        if self.lenient:
            return False
        return suffix in REFUSED_STRICT or (suffix == RESUME and self.resume == "refuse")

    def bad_points(self, pk, dk, points):
        """Names of points the device's thing model lacks or types otherwise."""
        model = None if self.lenient else self.models.get((pk, dk))
        if model is None:
            return []
        spec = model["measurepoints"]
        return [n for n, v in points.items() if n not in spec or not _type_ok(spec[n], v)]

    def bad_attributes(self, pk, dk, attrs):
        model = None if self.lenient else self.models.get((pk, dk))
        if model is None:
            return []
        spec = model["attributes"]
        return [n for n, v in attrs.items() if n not in spec or not _type_ok(spec[n], v)]

    def take(self, fault):
        """Uses up one request of a fault count; True when it applies to this request."""
        n = getattr(self, fault)
        if n > 0:
            setattr(self, fault, n - 1)
            return True
        return False
