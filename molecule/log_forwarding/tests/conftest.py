"""The scenario's hosts by role, reached the way molecule's verifier reaches them."""
import pytest
from shared_checks import role_fixtures

COLLECTOR = "lf-coll"
CLIENTS = ["lf-d12", "lf-d13"]


collector, clients = role_fixtures(COLLECTOR, CLIENTS)


@pytest.fixture(scope="session")
def collector_address(collector):
    return collector.interface.default().addresses[0]

