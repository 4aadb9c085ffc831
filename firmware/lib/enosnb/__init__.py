"""enosnb: EnOS over NB-IoT.

MicroPython firmware that reports sensor measurements to the EnOS IoT cloud with CoAP over
DTLS 1.2 PSK, through a SIM7020 or BC95 NB-IoT modem. Layers, top to bottom: enos, coap,
dtls, endpoint (modem socket or OS UDP socket), modem, port. See docs/architecture.md.
"""

VERSION = "0.1.0"
