"""CoAP-over-DTLS server on aiocoap 0.4.17 with the tinydtls_server transport (DTLSSocket 0.2.3),
for loopback interop tests (dtls.md §18.5).

    python -P aio_psk_server.py BIND_PORT [--identity ID] [--key TEXT] [--lifetime S]

DTLS is served on BIND_PORT + 1. Resources: GET /hello returns "hello over coaps"; POST /echo
returns the request payload. Prints `ready PORT` (the DTLS port) once the context is up.
tinydtls offers only the CCM suites, sends no ServerKeyExchange (no hint), an empty session ID
(no resumption) and a 16-byte cookie; it keeps identities <= 32 and keys <= 16 bytes.
"""
import argparse
import asyncio

import aiocoap
from aiocoap import resource
from aiocoap.credentials import CredentialsMap

HELLO = b"hello over coaps"


class Hello(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=HELLO)


class Echo(resource.Resource):
    async def render_post(self, request):
        return aiocoap.Message(code=aiocoap.CHANGED, payload=request.payload)


async def serve(port, identity, key, lifetime):
    site = resource.Site()
    site.add_resource(["hello"], Hello())
    site.add_resource(["echo"], Echo())
    creds = CredentialsMap()
    creds.load_from_dict({":client": {"dtls": {"psk": key, "client-identity": identity}}})
    ctx = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", port), transports=["tinydtls_server"],
        server_credentials=creds)
    print("ready", port + 1, flush=True)
    try:
        await asyncio.sleep(lifetime)
    finally:
        await ctx.shutdown()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--identity", default="Client_identity")
    ap.add_argument("--key", default="secretPSK", help="PSK as text")
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args(argv)
    asyncio.run(serve(args.port, args.identity.encode(), args.key.encode(), args.lifetime))


if __name__ == "__main__":
    main()
