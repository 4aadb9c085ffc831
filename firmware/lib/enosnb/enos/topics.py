"""EnOS topics and their CoAP paths (enos-coap.md §3.4, §8.3, §11.4, §11.6).

A topic is the MQTT topic (`/sys/{pk}/{dk}/thing/...`); its CoAP path is `/topic` + topic.
Every `/sys/{pk}/{dk}/` topic's JSON `method` is the rest of the topic with `/` read as `.`
(thing/measurepoint/post/batch -> thing.measurepoint.post.batch), which is how EnOS checks
1260 "methods not consistent".
"""

PATH_PREFIX = "/topic"

MEASUREPOINT_POST = "thing/measurepoint/post"
MEASUREPOINT_POST_BATCH = "thing/measurepoint/post/batch"
MEASUREPOINT_RESUME = "thing/measurepoint/resume"
MEASUREPOINT_RESUME_BATCH = "thing/measurepoint/resume/batch"
ATTRIBUTE_UPDATE = "thing/attribute/update"
ATTRIBUTE_QUERY = "thing/attribute/query"
ATTRIBUTE_DELETE = "thing/attribute/delete"
UP_RAW = "thing/model/up_raw"
DOWN_RAW = "thing/model/down_raw"
MEASUREPOINT_SET = "thing/service/measurepoint/set"
MEASUREPOINT_GET = "thing/service/measurepoint/get"
ACTIVATE_INFO = "thing/activate/info"

# Kinds of downstream command (§11.4 step 4).
CMD_RAW = "raw"
CMD_SET = "set"
CMD_GET = "get"
CMD_SERVICE = "service"


def sys_topic(product_key, device_key, suffix):
    """/sys/{pk}/{dk}/{suffix}"""
    return "/sys/%s/%s/%s" % (product_key, device_key, suffix)


def path(topic):
    """The CoAP path of a topic: /topic + topic."""
    return PATH_PREFIX + topic


def event_suffix(event_id):
    return "thing/event/%s/post" % event_id


def service_suffix(service_id):
    return "thing/service/%s" % service_id


def activate_topic(product_key, device_key):
    """/ext/session/{pk}/{dk}/thing/activate/info (per-product activation, §7)."""
    return "/ext/session/%s/%s/%s" % (product_key, device_key, ACTIVATE_INFO)


def method_of(suffix):
    """The JSON method that belongs to a topic suffix: thing/event/x/post -> thing.event.x.post."""
    return suffix.replace("/", ".")


def reply_topic(topic):
    """The reply topic of a request or command topic (§11.6): topic + `_reply`."""
    return topic + "_reply"


def topic_of_option(value):
    """The topic named by an option-2100 value, with or without its /topic prefix."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode()
    if value.startswith(PATH_PREFIX + "/"):
        return value[len(PATH_PREFIX):]
    if not value.startswith("/"):
        value = "/" + value
    return value


def split_sys(topic):
    """(pk, dk, suffix) of a /sys/{pk}/{dk}/{suffix} topic, or None for any other topic."""
    parts = topic.split("/", 4)
    if len(parts) != 5 or parts[0] != "" or parts[1] != "sys" or not parts[2] or not parts[3]:
        return None
    return parts[2], parts[3], parts[4]


def classify_command(topic):
    """(kind, service_id) of a downstream command topic; kind is None when it is not a command.

    service_id is set for CMD_SERVICE only. _reply topics are never commands.
    """
    sp = split_sys(topic)
    if sp is None:
        return None, None
    suffix = sp[2]
    if suffix.endswith("_reply"):
        return None, None
    if suffix == DOWN_RAW:
        return CMD_RAW, None
    if suffix == MEASUREPOINT_SET:
        return CMD_SET, None
    if suffix == MEASUREPOINT_GET:
        return CMD_GET, None
    head = "thing/service/"
    if suffix.startswith(head):
        sid = suffix[len(head):]
        if sid and "/" not in sid:
            return CMD_SERVICE, sid
    return None, None
