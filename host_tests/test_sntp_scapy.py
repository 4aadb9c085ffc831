"""The firmware's SNTP packets (enosnb.sntp) against scapy's NTP layer, written by others:
scapy reads our request as an SNTPv4 client request carrying our nonce, and we read the
server answers scapy builds to the same times scapy holds."""
from hypothesis import given, settings, strategies as st
from scapy.layers.ntp import NTPHeader

from enosnb import sntp


def test_scapy_reads_the_request_as_version_4_client_mode_with_our_nonce():
    nonce = bytes(range(8))
    p = NTPHeader(sntp.request(nonce))
    assert (p.leap, p.version, p.mode, p.stratum) == (0, 4, 3, 0)
    assert bytes(p)[40:48] == nonce and len(bytes(p)) == 48


@settings(max_examples=200, deadline=None)
@given(st.integers(3786825600, 4294967295), st.integers(0, 999), st.integers(1, 15),
       st.binary(min_size=8, max_size=8))
def test_answers_scapy_builds_are_read_to_the_millisecond(secs, ms, stratum, nonce):
    frac = (ms << 32) // 1000 + 1
    ts = (secs << 32) | frac
    answer = NTPHeader(leap=0, version=4, mode=4, stratum=stratum, recv=0, sent=0)
    raw = bytearray(bytes(answer))
    raw[24:32] = nonce
    raw[32:40] = ts.to_bytes(8, "big")
    raw[40:48] = ts.to_bytes(8, "big")
    assert NTPHeader(bytes(raw)).mode == 4
    t2, t3 = sntp.parse(bytes(raw), nonce)
    assert t2 == t3 == (secs - 2208988800) * 1000 + ms


def test_a_scapy_answer_with_the_alarm_leap_indicator_is_refused():
    nonce = b"noncenon"
    raw = bytearray(bytes(NTPHeader(leap=3, version=4, mode=4, stratum=16)))
    raw[24:32] = nonce
    try:
        sntp.parse(bytes(raw), nonce)
    except sntp.SntpError as e:
        assert "not synchronised" in str(e)
    else:
        raise AssertionError("an unsynchronised server's time was taken")
