"""Our own DTLS 1.2 PSK client (dtls.md). Import what you need from its modules: the session
(session.py), its errors (errors.py) and retransmission timers (timers.py); the handshake
(handshake.py, hmac_prf.py) and the CBC suite (cbc.py) load only when they are used."""
