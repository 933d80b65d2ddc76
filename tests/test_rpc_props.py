"""Property tests (hypothesis, on CPython) of the reply checks the plug applies to
whatever a node sends: any JSON value is either accepted as exactly what a valid reply
says, or refused with a ChainError; nothing else escapes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from plug.chain import BadReply, qty
from plug.rpc import RPC, ChainError, RPCError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _rpc():
    r = RPC(["http://127.0.0.1:1"])
    r._id = 7
    return r


def check_reply(reply):
    r = _rpc()
    try:
        got = r._check(reply, "eth_x")
    except RPCError as e:
        assert reply["error"]["code"] == e.code
        return
    except ChainError:
        return
    # ("error": null beside a result is tolerated, as some nodes send it)
    assert reply["jsonrpc"] == "2.0" and reply["id"] == 7 and reply.get("error") is None
    assert got is reply["result"]


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_reply_is_accepted_only_as_a_valid_envelope(reply):
    check_reply(reply)


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "id": st.sampled_from([7, 8, "7", None]),
    "result": json_values, "error": json_values | st.fixed_dictionaries(
        {"code": st.integers() | st.text(max_size=3), "message": st.text(max_size=30)})}))
def test_envelope_shaped_replies(reply):
    check_reply(reply)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), st.from_regex(r"0x[0-9a-fA-F]{0,70}", fullmatch=True),
                 json_values))
def test_quantities_parse_exactly_or_are_refused(v):
    try:
        n = qty(v, "x", 2**64 - 1)
    except BadReply as e:
        assert len(str(e)) < 120
        return
    assert isinstance(v, str) and v.startswith("0x") and 0 <= n < 2**64
    assert n == int(v, 16)
