# JSON-RPC 2.0 over HTTP(S) for the chain client, on plug.http_client.
#
#   r = RPC(["http://node-a:8545", "http://node-b:8545"], timeout_s=5, retries=2)
#   r.call("eth_chainId") -> result (whatever JSON the node sent as "result")
#   r.round_trips -> int, HTTP requests made so far (benchmarks count them)
#   r.expect_chain(31337)  (plug.chain.Chain does this) -> before a URL's first answer is
#       used, that node's eth_chainId is asked once; a node on another chain is skipped
#       while any other node may serve, and a call raises WrongChain if all are
#
# A call blocks the plug's event loop while it waits, so each call is one operation
# with ONE total deadline, `deadline_s` (connect, TLS, request and reply, the chain id
# check, every retry, backoff and node it fails over to; default 2 x timeout_s + 1 s;
# the plug uses CALL_DEADLINE_S = 4 s), and a quiet node is given up after `timeout_s`
# without a byte (CALL_TIMEOUT_S = 2 s). A node that is down, times out or answers
# garbage is retried with backoff and the next URL is tried while time is left; each
# node still to try in a round gets an equal share of it (at least timeout_s), so one
# that trickles cannot take the others' turn.
# Replies are read up to max_reply_bytes and refused beyond; the JSON-RPC envelope
# is checked (jsonrpc "2.0", our id, exactly one of result or error, error with an
# int code and a string message). Node errors are mapped to named conditions:
#
#   ChainError                     base of everything the chain client raises
#     Unreachable                  no node answered a valid reply (after retries)
#     BadReply                     a reply was malformed, oversize or for another id
#     WrongChain                   every node is on another chain than the config's
#     RPCError(code, message)      the node answered with a JSON-RPC error
#       NonceTooLow, ReplacementUnderpriced, InsufficientFunds, AlreadyKnown,
#       ExecutionReverted
#
# The node answered errors are not retried: they are answers. Unreachable carries
# the last underlying problem in its message.
import json
import time

from plug import iobuf, jsonlimit

CALL_TIMEOUT_S = 2  # seconds without a byte before a quiet node is given up
CALL_DEADLINE_S = 4  # seconds for one whole call: the longest the event loop waits

try:
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
    _sleep_ms = time.sleep_ms
except AttributeError:  # CPython (host tools)
    _ticks_ms = lambda: int(time.monotonic() * 1000)  # noqa: E731
    _ticks_diff = lambda a, b: a - b  # noqa: E731
    _sleep_ms = lambda ms: time.sleep(ms / 1000)  # noqa: E731


class ChainError(Exception):
    pass


class Unreachable(ChainError):
    pass


class BadReply(ChainError):
    pass


class WrongChain(ChainError):
    pass


def _raw_body(id_, raw_hex):
    """The body of eth_sendRawTransaction in one block of its size, the transaction's hex
    (0-9, a-f: nothing to escape) copied in 64-character pieces: the largest thing a
    payment sends, made without a second copy of it (json.dumps, encode, head + body)."""
    if raw_hex[:2] != "0x" or len(raw_hex) % 2:
        raise ValueError("a raw transaction is 0x-prefixed hex")
    pre = b'{"jsonrpc": "2.0", "id": %d, "method": "eth_sendRawTransaction", "params": ["' % id_
    n = len(pre)
    out = bytearray(n + len(raw_hex) + 3)
    out[:n] = pre
    for i in range(0, len(raw_hex), 64):
        piece = raw_hex[i:i + 64].encode()
        out[n:n + len(piece)] = piece
        n += len(piece)
    out[n:] = b'"]}'
    return out


class RPCError(ChainError):
    def __init__(self, code, message, method=""):
        super().__init__("%s: node error %s: %s" % (method, code, message))
        self.code = code
        self.message = message
        self.method = method


class NonceTooLow(RPCError):
    pass


class ReplacementUnderpriced(RPCError):
    pass


class InsufficientFunds(RPCError):
    pass


class AlreadyKnown(RPCError):
    pass


class ExecutionReverted(RPCError):
    pass


# lower-case fragments of geth, erigon, nethermind, besu and anvil messages
_CONDITIONS = (
    ("nonce too low", NonceTooLow),
    ("nonce is too low", NonceTooLow),
    ("oldnonce", NonceTooLow),
    ("replacement transaction underpriced", ReplacementUnderpriced),
    ("replacement underpriced", ReplacementUnderpriced),
    ("replacementnotallowed", ReplacementUnderpriced),
    ("insufficient funds", InsufficientFunds),
    ("already known", AlreadyKnown),
    ("already imported", AlreadyKnown),
    ("known transaction", AlreadyKnown),
    ("alreadyknown", AlreadyKnown),
    ("execution reverted", ExecutionReverted),
)


def error_for(code, message, method=""):
    """The named RPCError subclass for a node's error object."""
    low = message.lower()
    for frag, cls in _CONDITIONS:
        if frag in low:
            return cls(code, message, method)
    if code == 3:  # EIP-1474: execution error (revert with data)
        return ExecutionReverted(code, message, method)
    return RPCError(code, message, method)


class RPC:
    def __init__(self, urls, timeout_s=5, retries=2, backoff_ms=250, max_reply_bytes=16384,
                 deadline_s=None, cooldown_ms=0):
        if isinstance(urls, str):
            urls = [urls]
        if not urls:
            raise ValueError("rpc_urls: need at least one URL")
        for u in urls:
            if not isinstance(u, str) or not (u.startswith("http://") or
                                              u.startswith("https://")):
                raise ValueError("rpc_urls: %r is not an http:// or https:// URL" % (u,))
        self.urls = list(urls)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_ms = backoff_ms
        self.max_reply_bytes = max_reply_bytes
        # one deadline for the whole call, retries included
        self.deadline_ms = int((deadline_s or 2 * timeout_s + 1) * 1000)
        self._t = self._slice = 0  # the call's start (ticks), the attempt's deadline (ms)
        self.round_trips = 0
        self._id = 0
        self._best = 0  # index of the URL that answered last
        # after no node answered (not for our own lack of memory: that passes at once),
        # calls fail at once for cooldown_ms: a hung node then blocks the plug's event
        # loop once per cooldown, not once per call
        self.cooldown_ms = cooldown_ms
        self._down = None  # (ticks when no node answered, reason)
        self.chain_id = None
        self._verified = [False] * len(self.urls)
        self._wrong = [None] * len(self.urls)  # chain id of a node on another chain

    def expect_chain(self, chain_id):
        """Use only nodes whose eth_chainId is chain_id (each asked once)."""
        if chain_id != self.chain_id:
            self.chain_id = chain_id
            self._verified = [False] * len(self.urls)
            self._wrong = [None] * len(self.urls)

    def _wrong_chain(self):
        """WrongChain if every node is on another chain, else None."""
        if None in self._wrong:
            return None
        return WrongChain("node is on chain %d, config says %d: refusing to use it (%s)"
                          % (self._wrong[-1], self.chain_id, self.urls[-1]))

    def _request(self, method, params):
        """JSON body of a request with a new id."""
        self._id = (self._id + 1) & 0x3FFFFFFF
        if method == "eth_sendRawTransaction":
            return _raw_body(self._id, params[0])
        return json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method,
                           "params": list(params)})

    def _verify(self, i):
        """Ask node i its chain id (once); its eth_chainId result, or None if wrong."""
        from plug.chain import _U64, qty  # plug.chain imports this module

        reply = self._post(self.urls[i], self._request("eth_chainId", ()))
        try:
            v = self._check(reply, "eth_chainId")
        except RPCError as e:
            raise BadReply("chain id unknown (%s)" % _describe(e))
        got = qty(v, "eth_chainId", _U64)
        if got != self.chain_id:
            self._wrong[i] = got
            return None
        self._verified[i] = True
        return v

    def call(self, method, params=()):
        if self._down is not None:
            if _ticks_diff(_ticks_ms(), self._down[0]) < self.cooldown_ms:
                raise Unreachable("%s: not tried, no node answered %d s ago (%s)" % (
                    method, _ticks_diff(_ticks_ms(), self._down[0]) // 1000, self._down[1]))
            self._down = None
        if None not in self._wrong:  # all on other chains: ask again rather than give up
            self._wrong = [None] * len(self.urls)
        last = "no attempt"
        node_failed = False  # not only our own lack of memory: the cooldown applies
        n = len(self.urls)
        body = sent_id = None
        t0 = _ticks_ms()
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff_ms << (attempt - 1)
                if self._left(t0) <= pause:
                    break
                _sleep_ms(pause)
            for j in range(n):
                i = (self._best + j) % n
                if self._wrong[i] is not None:
                    continue
                left = self._left(t0)
                if left <= 0:
                    break
                # the attempt's deadline, counted from t0: a fair share of what is left
                share = max(left // (n - j), min(left, int(self.timeout_s * 1000)))
                self._t, self._slice = t0, self.deadline_ms - left + share
                try:
                    if self.chain_id is not None and not self._verified[i]:
                        v = self._verify(i)
                        if v is None:
                            last = "%s: node is on chain %d, config says %d" % (
                                self.urls[i], self._wrong[i], self.chain_id)
                            continue
                        if method == "eth_chainId":
                            self._best = i
                            return v
                    if body is None or sent_id != self._id:  # a check asked in between
                        body = self._request(method, params)
                        sent_id = self._id
                    reply = self._post(self.urls[i], body)
                    result = self._check(reply, method)
                except (OSError, BadReply) as e:
                    last = "%s: %s" % (self.urls[i], _describe(e))
                    node_failed = True
                    continue
                except MemoryError as e:  # e says what had no room: https's CA, the reply...
                    last = "%s: out of memory: %s" % (self.urls[i], _describe(e))
                    continue
                self._best = i
                return result
            wrong = self._wrong_chain()
            if wrong:
                raise wrong
        if any(w is not None for w in self._wrong) and "config says" not in last:
            last += "; a node on chain %d is not used" % max(
                w for w in self._wrong if w is not None)
        if self.cooldown_ms and node_failed:
            self._down = (_ticks_ms(), last)
        raise Unreachable("%s: no node answered within %d ms (%s)"
                          % (method, self.deadline_ms, last))

    def _left(self, t0):
        return self.deadline_ms - _ticks_diff(_ticks_ms(), t0)

    def _post(self, url, body):
        from plug import http_client

        self.round_trips += 1
        try:
            status, buf = http_client.request(
                "POST", url, body, {"Content-Type": "application/json"}, self.timeout_s,
                self._slice, max_body_bytes=self.max_reply_bytes, start_ms=self._t,
                chunks=True)  # pieces of <= 512 B, parsed as one stream (issue 11)
        except (http_client.ReplyError, ValueError) as e:  # ValueError: a bad URL
            raise BadReply(str(e))
        try:
            if status != 200:
                raise BadReply("HTTP status %d" % status)
            try:  # size and nesting before the parser and the checks recurse
                jsonlimit.check(buf, self.max_reply_bytes)
            except ValueError as e:
                raise BadReply("reply refused: %s" % e)
            try:
                return jsonlimit.parse(buf)
            except (ValueError, RuntimeError):  # RuntimeError: nesting too deep
                raise BadReply("reply is not JSON")
            except MemoryError as e:
                raise MemoryError("no room to parse a reply of %d bytes (%s)"
                                  % (sum(len(b) for b in buf), e))
        finally:
            iobuf.CLIENT.give_all(buf)  # the reply's pieces (plug/iobuf.py)

    def _check(self, reply, method):
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
            raise BadReply("reply is not a JSON-RPC 2.0 object")
        rid = reply.get("id")
        if type(rid) is not int or rid != self._id:
            raise BadReply("reply id does not match the request")
        has_result = "result" in reply
        err = reply.get("error")
        if has_result == (err is not None):
            raise BadReply("reply must hold exactly one of result and error")
        if err is not None:
            if not isinstance(err, dict):
                raise BadReply("error is not an object")
            code = err.get("code")
            msg = err.get("message")
            if type(code) is not int or not isinstance(msg, str):
                raise BadReply("error needs an int code and a string message")
            raise error_for(code, msg[:200], method)
        return reply["result"]


def _describe(e):
    s = str(e) or type(e).__name__
    return s[:120]
