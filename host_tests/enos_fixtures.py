"""What the EnOS client and server tests share: the example device (enos-coap.md)
and a local EnOS server for the whole test module, with a read-only view of its database."""
import pytest

from tools.enos_server.db import Db
from tools.enos_server.server import EnosServer

PK = "MuGsF6W4"
DK = "15bBZlRknc"
SECRET = "ExampleDeviceSecret0123456789abc"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The local EnOS server on free plain and DTLS ports; `.db_view` reads what it stored."""
    db_path = str(tmp_path_factory.mktemp("enos") / "enos.sqlite")
    srv = EnosServer(db_path=db_path, port=0, dtls_port=0, log=None)
    srv.start()
    srv.db_view = Db(db_path)
    try:
        yield srv
    finally:
        srv.db_view.close()
        srv.stop()
