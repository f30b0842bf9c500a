import pytest

from robots_policy import check_addresses


@pytest.mark.parametrize(
    ("addresses", "allow_loopback", "allowed", "reason"),
    [
        (["93.184.215.14"], False, True, "net:public"),
        (["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], False, True, "net:public"),
        (["127.0.0.1"], False, False, "address_loopback"),
        (["127.0.0.1"], True, True, "net:ok"),
        (["127.5.6.7"], True, True, "net:ok"),
        (["::1"], True, True, "net:ok"),
        (["::ffff:127.0.0.1"], False, False, "address_loopback"),
        (["10.1.2.3"], True, False, "address_private"),
        (["172.16.0.1"], True, False, "address_private"),
        (["192.168.1.1"], True, False, "address_private"),
        (["100.64.0.1"], True, False, "address_private"),  # carrier-grade NAT
        (["fd00::1"], True, False, "address_private"),
        # Link-local (cloud metadata) stays closed even with loopback opened.
        (["169.254.169.254"], True, False, "address_link_local"),
        (["fe80::1"], True, False, "address_link_local"),
        (["::ffff:169.254.169.254"], True, False, "address_link_local"),
        (["224.0.0.1"], False, False, "address_multicast"),
        (["0.0.0.0"], True, False, "address_reserved"),
        (["240.0.0.1"], False, False, "address_reserved"),
        # One bad address among good ones blocks: the connection might use it.
        (["93.184.215.14", "10.0.0.1"], False, False, "address_private"),
        ([], False, False, "unresolvable"),
    ],
)
def test_check_addresses(addresses, allow_loopback, allowed, reason):
    decision = check_addresses(addresses, allow_loopback=allow_loopback)
    assert (decision.allowed, decision.reason) == (allowed, reason)
