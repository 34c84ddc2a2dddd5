import pytest

from alert_receivers import DogStatsDReceiver, HTTPReceiver, SMTPServer, make_cert  # noqa: F401


@pytest.fixture
def receiver():
    r = HTTPReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def statsd():
    r = DogStatsDReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory, ):
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl binary not found (needed to make a test certificate)")
    return make_cert(tmp_path_factory.mktemp("tls"))
