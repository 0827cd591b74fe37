"""Opportunistic STARTTLS on delivery (RFC 3207, docs/DELIVERY.md): a peer
offering STARTTLS with a self-signed certificate still gets the message
encrypted (tls=yes); a peer whose handshake fails is tried again once in
plaintext on the same host, as Postfix does."""

import shutil

import pytest

from agent_fixture import relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX
from fakeservers import make_cert, server_tls_context

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

CAPS = ["PIPELINING", "SIZE 10485760", "8BITMIME", "STARTTLS"]


def test_unverifiable_certificate_still_encrypts(relay, tmp_path):
    crt, key = make_cert(str(tmp_path), cn="mx1.remote.test", san="DNS:mx1.remote.test")
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.51")]})
    with ScriptedMX("127.0.0.51", r.port, capabilities=CAPS,
                    tls_context=server_tls_context(crt, key)) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx.messages, what="delivery", log=srv.log)
        r.wait_empty()
    assert mx.sessions[0]["tls"] is True
    cmds = [c.split()[0].upper() for c in mx.sessions[0]["commands"]]
    assert cmds[:3] == ["EHLO", "STARTTLS", "EHLO"]  # EHLO again after TLS
    srv.wait_log(r"event=delivery .*to=<bob@remote\.test> .*tls=yes status=sent")


def test_failed_handshake_is_retried_in_plaintext(relay):
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.52")]})
    with ScriptedMX("127.0.0.52", r.port, capabilities=CAPS,
                    replies={"STARTTLS": ["BREAK", "454 4.7.0 not now"]}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx.messages, what="delivery", log=srv.log)
        r.wait_empty()
    assert len(mx.sessions) == 2
    assert mx.sessions[0]["messages"] == []
    assert not any(c.upper() == "STARTTLS" for c in mx.sessions[1]["commands"])
    srv.wait_log(r"event=delivery .*tls=no status=sent")


def test_encrypt_policy_defers_a_peer_without_starttls(relay):
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.53")]},
              delivery='tls_policy = "encrypt";')
    with ScriptedMX("127.0.0.53", r.port, capabilities=["PIPELINING", "8BITMIME"]) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        srv.wait_log(r"event=delivery .*to=<bob@remote\.test> .*status=deferred dsn=4\.7\.4 "
                     r"reply=\".*does not offer STARTTLS\"")
    assert mx.messages == []
    assert not any(c.upper().startswith("MAIL") for s in mx.sessions for c in s["commands"])
    assert len(r.queued()) == 1
    assert srv.messages("alice") == []


def test_per_destination_policy_encrypt_beside_default_may(relay):
    """delivery.tls_policies: mail for a subdomain of .secure.test (policy
    encrypt) waits for STARTTLS while plain.test (the default, may) is sent
    in plaintext by the same server."""
    r = relay({"mx.secure.test": [(10, "mx1.secure.test", "127.0.0.54")],
               "plain.test": [(10, "mx1.plain.test", "127.0.0.55")]},
              delivery='tls_policies = ( { domain = ".secure.test"; policy = "encrypt"; },\n'
                       '                 { domain = "other.test"; policy = "verify"; } );')
    caps = ["PIPELINING", "8BITMIME"]
    with ScriptedMX("127.0.0.54", r.port, capabilities=caps) as secure, \
            ScriptedMX("127.0.0.55", r.port, capabilities=caps) as plain:
        srv = r.start()
        r.send(["bob@mx.secure.test"])
        r.send(["carol@plain.test"])
        wait_for(lambda: plain.messages, what="plaintext delivery", log=srv.log)
        srv.wait_log(r"event=delivery .*to=<carol@plain\.test> .*tls=no status=sent")
        srv.wait_log(r"event=delivery .*to=<bob@mx\.secure\.test> .*status=deferred dsn=4\.7\.4 "
                     r"reply=\".*does not offer STARTTLS\"")
    assert secure.messages == []
    assert not any(c.upper().startswith("MAIL") for s in secure.sessions for c in s["commands"])
    assert len(plain.messages) == 1
    assert len(r.queued()) == 1


def test_per_destination_verify_refuses_a_self_signed_certificate(relay, tmp_path):
    """A domain with policy verify checks the MX's certificate although the
    default is may: a self-signed one defers with 4.7.5 and is not retried
    in plaintext, while the same kind of certificate on a may domain still
    encrypts."""
    crt, key = make_cert(str(tmp_path), cn="mx1.strict.test", san="DNS:mx1.strict.test")
    ctx = server_tls_context(crt, key)
    r = relay({"strict.test": [(10, "mx1.strict.test", "127.0.0.56")],
               "open.test": [(10, "mx1.open.test", "127.0.0.57")]},
              delivery='tls_policies = ( { domain = "strict.test"; policy = "verify"; } );')
    with ScriptedMX("127.0.0.56", r.port, capabilities=CAPS, tls_context=ctx) as strict, \
            ScriptedMX("127.0.0.57", r.port, capabilities=CAPS, tls_context=ctx) as open_:
        srv = r.start()
        r.send(["bob@strict.test"])
        r.send(["carol@open.test"])
        wait_for(lambda: open_.messages, what="delivery to open.test", log=srv.log)
        srv.wait_log(r"event=delivery .*to=<carol@open\.test> .*tls=yes status=sent")
        srv.wait_log(r"event=delivery .*to=<bob@strict\.test> .*status=deferred dsn=4\.7\.5 ")
    assert strict.messages == []
    # no plaintext retry under verify: every session asked for STARTTLS first
    assert strict.sessions
    for s in strict.sessions:
        cmds = [c.split()[0].upper() for c in s["commands"]]
        assert cmds[:2] == ["EHLO", "STARTTLS"], cmds
        assert "MAIL" not in cmds
    assert open_.sessions[0]["tls"] is True
    assert len(r.queued()) == 1
