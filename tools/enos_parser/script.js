/*
 * EnOS parsing script for the enosnb raw measurement-point format
 * (firmware/lib/enosnb/enos/rawpoints.py; enos-coap.md §8.4 "Passthrough").
 *
 * Paste it into the product's "Data parsing script" (data type Custom). EnOS calls
 *   rawDataToJsonStr(rawData)  for up_raw uplinks and device replies: bytes -> JSON text
 *   jsonStrToRawData(jsonStr)  for down_raw commands: JSON text -> bytes
 * rawData is an array of bytes, signed (-128..127, a Java byte[]) or unsigned; both work.
 * Plain ES5 (no typed arrays, no arrow functions) so that older script engines run it.
 *
 * POINTS is the point table: the position of a name is its index on the wire. It must be
 * the same list, in the same order, as the table the device passes to rawpoints.
 */
var POINTS = ["temp", "humidity", "pressure", "battery", "rssi"];

var POST_NO_TIME = 0x10, POST_SECONDS = 0x11, POST_MS = 0x12, SET = 0x21, REPLY = 0x22;

function u8(b, p) { return b[p] & 0xFF; }

function u16(b, p) { return u8(b, p) * 256 + u8(b, p + 1); }

function u32(b, p) { return u16(b, p) * 65536 + u16(b, p + 2); }

function f32(b, p) {
    var bits = u32(b, p);
    var sign = bits >= 0x80000000 ? -1 : 1;
    var exp = Math.floor(bits / 0x800000) & 0xFF;
    var frac = bits % 0x800000;
    if (exp === 0xFF) { return frac ? NaN : sign * Infinity; }
    if (exp === 0) { return sign * frac * Math.pow(2, -149); }
    var v = sign * (1 + frac / 0x800000) * Math.pow(2, exp - 127);
    // float32 holds about 7 significant digits: 21.3 arrives as 21.299999237, sent as 21.3.
    return parseFloat(v.toPrecision(7));
}

function putF32(out, v) {
    var sign = 0, exp, frac;
    if (v < 0 || (v === 0 && 1 / v < 0)) { sign = 1; v = -v; }
    if (v === 0) { exp = 0; frac = 0; }
    else if (!isFinite(v)) { exp = 0xFF; frac = v !== v ? 1 : 0; }
    else {
        exp = Math.floor(Math.log(v) / Math.LN2);
        if (v / Math.pow(2, exp) >= 2) { exp += 1; }
        if (v / Math.pow(2, exp) < 1) { exp -= 1; }
        if (exp < -126) { exp = 0; frac = Math.round(v / Math.pow(2, -149)); }
        else {
            frac = Math.round((v / Math.pow(2, exp) - 1) * 0x800000);
            if (frac >= 0x800000) { frac = 0; exp += 1; }
            exp += 127;
            if (exp >= 0xFF) { exp = 0xFF; frac = 0; }
        }
    }
    var hi = sign * 0x80000000 + exp * 0x800000 + frac;
    out.push(Math.floor(hi / 0x1000000) & 0xFF, Math.floor(hi / 0x10000) & 0xFF,
             Math.floor(hi / 0x100) & 0xFF, hi & 0xFF);
}

function points(b, p, end) {
    var mp = {};
    while (p < end) {
        if (p + 5 > end) { throw new Error("raw report ends inside a point"); }
        var idx = u8(b, p) & 0x7F, hasQuality = (u8(b, p) & 0x80) !== 0;
        if (idx >= POINTS.length) { throw new Error("point index " + idx + " is not in POINTS"); }
        var value = f32(b, p + 1);
        p += 5;
        if (hasQuality) {
            if (p >= end) { throw new Error("raw report ends before a quality byte"); }
            mp[POINTS[idx]] = {"value": value, "quality": u8(b, p)};
            p += 1;
        } else {
            mp[POINTS[idx]] = value;
        }
    }
    return mp;
}

function rawDataToJsonStr(rawData) {
    var b = rawData, n = b.length;
    if (n < 5) { throw new Error("raw message too short: " + n + " bytes"); }
    var type = u8(b, 0), id = String(u32(b, 1));
    if (type === REPLY) {
        if (n !== 7) { throw new Error("raw reply must be 7 bytes"); }
        return JSON.stringify({"id": id, "code": u16(b, 5), "data": {}});
    }
    var params = {}, p = 5, time = null;
    if (type === POST_SECONDS) { time = u32(b, 5) * 1000; p = 9; }
    else if (type === POST_MS) { time = u16(b, 5) * 4294967296 + u32(b, 7); p = 11; }
    else if (type !== POST_NO_TIME) { throw new Error("unknown raw message type " + type); }
    if (p > n) { throw new Error("raw report ends inside its header"); }
    params.measurepoints = points(b, p, n);
    if (time !== null) { params.time = time; }
    return JSON.stringify({"id": id, "version": "1.0", "method": "thing.measurepoint.post",
                           "params": params});
}

function jsonStrToRawData(jsonStr) {
    var msg = JSON.parse(jsonStr);
    if (msg.method !== "thing.service.measurepoint.set") {
        throw new Error("only thing.service.measurepoint.set has a raw form, not " + msg.method);
    }
    var id = parseInt(msg.id, 10) >>> 0;
    var out = [SET, (id >>> 24) & 0xFF, (id >>> 16) & 0xFF, (id >>> 8) & 0xFF, id & 0xFF];
    var names = [], name, i;
    for (name in msg.params) { if (msg.params.hasOwnProperty(name)) { names.push(name); } }
    names.sort(function (a, b) { return POINTS.indexOf(a) - POINTS.indexOf(b); });
    for (i = 0; i < names.length; i++) {
        var idx = POINTS.indexOf(names[i]);
        if (idx < 0) { throw new Error("point " + names[i] + " is not in POINTS"); }
        out.push(idx);
        putF32(out, Number(msg.params[names[i]]));
    }
    return out;
}

if (typeof module !== "undefined") {
    module.exports = {rawDataToJsonStr: rawDataToJsonStr, jsonStrToRawData: jsonStrToRawData,
                      POINTS: POINTS};
}
