"""CoAP (RFC 7252, block-wise RFC 7959): message codec (errors, codes, options, message)
and, on top of it, the client (client, blockwise)."""
