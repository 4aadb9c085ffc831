"""The alternative a device maker would otherwise pick: MQTT 3.1.1 over TLS-PSK, QoS 1.

Starts a local mosquitto with a TLS-PSK listener (TLS 1.2, PSK-AES128-CCM8, the same identity
and key as the EnOS DTLS identity), publishes the reference report with mosquitto_pub, and
captures the exchange on the loopback interface with tshark. mosquitto_pub may negotiate
TLS 1.3 whatever --tls-version says, so an OpenSSL configuration pins TLS 1.2.

Figures are taken from the capture: IP bytes (headers included), TCP segments, and round trips
(each time the client sends and then waits for data from the broker: SYN/SYN-ACK, the two TLS
flights, CONNECT/CONNACK, PUBLISH/PUBACK).
"""
import os
import shutil
import subprocess
import tempfile
import time

from tools.netutil import Process, free_tcp_port, wait_tcp

_OSSL_CONF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
CipherString = PSK-AES128-CCM8:@SECLEVEL=0
"""


def _packets(pcap, port):
    out = subprocess.run(
        ["tshark", "-r", pcap, "-T", "fields", "-E", "separator=,",
         "-e", "ip.len", "-e", "tcp.srcport", "-e", "tcp.len", "-e", "tcp.flags.syn",
         "-e", "mqtt.msgtype"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    pkts = []
    for line in out.splitlines():
        f = line.split(",")
        if len(f) < 4 or not f[0]:
            continue
        from_client = int(f[1]) != port
        pkts.append({"ip_len": int(f[0]), "client": from_client, "tcp_len": int(f[2] or 0),
                     "syn": f[3] in ("1", "True"), "mqtt": f[4] if len(f) > 4 else ""})
    return pkts


def summarise(pkts, puback_index):
    """Bytes, segments and round trips up to and including the PUBACK, and to the end."""
    def rts(seq):
        n, waiting = 0, False
        for p in seq:
            if not (p["tcp_len"] or p["syn"]):
                continue
            if p["client"]:
                waiting = True
            elif waiting:
                n += 1
                waiting = False
        return n
    upto = pkts[:puback_index + 1]
    return {
        "ip_bytes_to_puback": sum(p["ip_len"] for p in upto),
        "segments_to_puback": len(upto),
        "round_trips_to_puback": rts(upto),
        "ip_bytes_total": sum(p["ip_len"] for p in pkts),
        "segments_total": len(pkts),
        "tls_bytes_up": sum(p["tcp_len"] for p in upto if p["client"]),
        "tls_bytes_down": sum(p["tcp_len"] for p in upto if not p["client"]),
    }


def measure(topic, payload, identity, psk_hex, client_id="dev1"):
    """One connect-publish(QoS 1)-disconnect of mosquitto_pub against a local mosquitto."""
    for tool in ("mosquitto", "mosquitto_pub", "tshark"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise RuntimeError("%s is missing: run `make deps` (Debian packages)" % tool)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_tcp_port()
    with tempfile.TemporaryDirectory() as tmp:
        # mosquitto started as root drops to its own user, which must read these files.
        os.chmod(tmp, 0o755)
        pskf = os.path.join(tmp, "psk.txt")
        with open(pskf, "w") as f:
            f.write("%s:%s\n" % (identity, psk_hex))
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\npsk_hint enos\npsk_file %s\nciphers PSK-AES128-CCM8\n"
                    "tls_version tlsv1.2\nallow_anonymous true\nuse_identity_as_username true\n"
                    % (port, pskf))
        osslf = os.path.join(tmp, "openssl.cnf")
        with open(osslf, "w") as f:
            f.write(_OSSL_CONF)
        pcap = os.path.join(tmp, "mqtt.pcap")
        broker = Process([mosquitto, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        cap = None
        try:
            wait_tcp(port, 10.0, broker.proc)
            cap = Process(["tshark", "-i", "lo", "-f", "tcp port %d" % port, "-w", pcap],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            # tshark says "Capturing on" once dumpcap is ready; before that packets are missed.
            end = time.monotonic() + 20
            while time.monotonic() < end:
                line = cap.proc.stderr.readline()
                if "Capturing on" in line or not line:
                    break
            time.sleep(0.3)
            env = dict(os.environ, OPENSSL_CONF=osslf)
            subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--psk", psk_hex,
                 "--psk-identity", identity, "--tls-version", "tlsv1.2",
                 "--ciphers", "PSK-AES128-CCM8", "-q", "1", "-i", client_id, "-t", topic,
                 "-m", payload], env=env, check=True, timeout=30,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        finally:
            if cap is not None:
                cap.stop()
            broker.stop()
        pkts = _packets(pcap, port)
    if not pkts:
        raise RuntimeError("tshark captured nothing on lo")
    # The PUBACK is encrypted, so it is found by position: the broker's fourth data-bearing
    # answer (ServerHello flight, Finished flight, CONNACK, PUBACK).
    answers = [i for i, p in enumerate(pkts) if not p["client"] and p["tcp_len"]]
    if len(answers) < 4:
        raise RuntimeError("MQTT exchange incomplete: %d broker records" % len(answers))
    return summarise(pkts, answers[3])
