"""A local EnOS-compatible CoAP server for development and tests (enos-coap.md).

`python -m tools.enos_server serve` starts it on 127.0.0.1 with plain CoAP (aiocoap) and
DTLS-PSK (Mbed TLS through python-mbedtls) in front of the same site.
"""
