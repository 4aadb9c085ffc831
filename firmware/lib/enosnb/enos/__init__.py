"""EnOS IoT Hub device protocol over CoAP (enos-coap.md): identity, topics, bodies, client, commands."""
