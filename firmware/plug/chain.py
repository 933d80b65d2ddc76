# The chain client: what the plug asks an Ethereum JSON-RPC node, with every answer
# checked before it is believed.
#
#   c = Chain(rpc, chain_id=31337, eip1559=True)       # rpc: plug.rpc.RPC
#   c.check_chain()            raises WrongChain unless eth_chainId == chain_id (cached;
#                              call before every signing, it asks the node only once;
#                              check_chain(True) asks again).
#                              The RPC client also asks every other node it fails over to
#                              before using its answers (RPC.expect_chain).
#   c.nonce(addr, "pending")   c.block_number()          c.balance(addr)
#   c.fees() -> {"maxFeePerGas", "maxPriorityFeePerGas"} (EIP-1559: 2 x the base fee of
#               the latest/next block from eth_feeHistory + eth_maxPriorityFeePerGas, or
#               the median tip of recent blocks) or {"gasPrice"} (legacy eth_gasPrice)
#   c.estimate_gas(tx) -> int  (tx: "from", "to", "data" bytes, "value")
#   c.send_raw(raw_hex, tx_hash=None) -> "0x<hash>"  (AlreadyKnown counts as sent);
#       raw_hex: "0x<signed transaction>", as the payment record keeps it (no copy of it
#       is made to send it); tx_hash: its hash as recorded at signing (else computed)
#   c.receipt("0x<hash>") -> None or {"hash", "status" 0|1, "block" int}
#   c.erc20_balance(token, owner) -> int  (balanceOf via eth_call)
#   c.erc20_decimals(token) -> int  (decimals() via eth_call, 0..255)
#
# A reply of the wrong type or out of range raises BadReply; node errors are the
# named RPCError subclasses from plug.rpc. All are ChainError.
import binascii

import eth
from plug.rpc import AlreadyKnown, BadReply, ChainError, RPCError, WrongChain

_U256 = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF  # literals stay
_U64 = 0xFFFFFFFFFFFFFFFF  # in flash when frozen; (1 << 256) - 1 is computed onto the heap
_HEXDIGITS = "0123456789abcdefABCDEF"
_DECIMALS = b"\x31\x3c\xe5\x67"  # selector of ERC-20 decimals()


def qty(v, what, limit=_U256):
    """A JSON-RPC QUANTITY ("0x1a") as an int in [0, limit]; BadReply otherwise."""
    if not isinstance(v, str) or len(v) < 3 or len(v) > 66 or v[:2] != "0x":
        raise BadReply("%s: expected a hex quantity" % what)
    for ch in v[2:]:
        if ch not in _HEXDIGITS:
            raise BadReply("%s: expected a hex quantity" % what)
    n = int(v[2:], 16)
    if n > limit:
        raise BadReply("%s: %s is out of range" % (what, v[:20]))
    return n


def data(v, what, max_len=4096):
    if not isinstance(v, str) or v[:2] != "0x" or len(v) % 2 or len(v) > 2 + 2 * max_len:
        raise BadReply("%s: expected hex data" % what)
    try:
        return binascii.unhexlify(v[2:])
    except ValueError:
        raise BadReply("%s: expected hex data" % what)


def hash32(v, what):
    if not isinstance(v, str) or len(v) != 66:
        raise BadReply("%s: expected a 32-byte hash" % what)
    data(v, what)
    return v.lower()


def _hex(b):
    return "0x" + binascii.hexlify(b).decode()


def _call_obj(tx):
    o = {}
    for k in ("from", "to"):
        if tx.get(k):
            o[k] = tx[k]
    if tx.get("data"):
        o["data"] = _hex(tx["data"])
    if tx.get("value"):
        o["value"] = hex(tx["value"])
    return o


class Chain:
    def __init__(self, rpc, chain_id, eip1559=True):
        self.rpc = rpc
        self.chain_id = chain_id
        self.eip1559 = eip1559
        self._checked = False
        rpc.expect_chain(chain_id)

    def check_chain(self, again=False):
        if self._checked and not again:
            return
        got = qty(self.rpc.call("eth_chainId"), "eth_chainId", _U64)
        if got != self.chain_id:
            raise WrongChain("node is on chain %d, config says %d: refusing to sign"
                             % (got, self.chain_id))
        self._checked = True

    def nonce(self, address, block="pending"):
        return qty(self.rpc.call("eth_getTransactionCount", (address, block)),
                   "eth_getTransactionCount", _U64)

    def block_number(self):
        return qty(self.rpc.call("eth_blockNumber"), "eth_blockNumber", _U64)

    def balance(self, address):
        return qty(self.rpc.call("eth_getBalance", (address, "latest")), "eth_getBalance")

    def _base_fee(self):
        # eth_feeHistory's reply is a few dozen bytes where the latest block is ~2 KB;
        # it lists the latest block's base fee and the next one's: take the higher
        h = self.rpc.call("eth_feeHistory", ("0x1", "latest", []))
        fees = h.get("baseFeePerGas") if isinstance(h, dict) else None
        if not isinstance(fees, list) or not fees or len(fees) > 4:
            raise BadReply("eth_feeHistory: expected a baseFeePerGas list")
        if fees[-1] is None or fees[-1] == "0x0":
            raise ChainError("the chain reports no base fee: set chain.eip1559 to false")
        return max(qty(f, "baseFeePerGas") for f in fees)

    def _priority_fee(self):
        try:
            return qty(self.rpc.call("eth_maxPriorityFeePerGas"), "eth_maxPriorityFeePerGas")
        except RPCError:  # node without the method: median tip of recent blocks
            h = self.rpc.call("eth_feeHistory", ("0x5", "latest", [50]))
            rewards = h.get("reward") if isinstance(h, dict) else None
            if not isinstance(rewards, list):
                raise BadReply("eth_feeHistory: expected a reward list")
            tips = sorted(qty(r[0], "eth_feeHistory reward") for r in rewards
                          if isinstance(r, list) and r)
            return tips[len(tips) // 2] if tips else 10**9

    def fees(self):
        if not self.eip1559:
            return {"gasPrice": qty(self.rpc.call("eth_gasPrice"), "eth_gasPrice")}
        base = self._base_fee()
        tip = self._priority_fee()
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def estimate_gas(self, tx):
        return qty(self.rpc.call("eth_estimateGas", (_call_obj(tx),)), "eth_estimateGas",
                   30000000)

    def send_raw(self, raw_hex, tx_hash=None):
        mine = tx_hash or _hex(eth.transaction_hash(binascii.unhexlify(raw_hex[2:])))
        try:
            got = self.rpc.call("eth_sendRawTransaction", (raw_hex,))
        except AlreadyKnown:
            return mine
        if hash32(got, "eth_sendRawTransaction") != mine:
            raise BadReply("node returned a different transaction hash")
        return mine

    def receipt(self, tx_hash):
        r = self.rpc.call("eth_getTransactionReceipt", (tx_hash,))
        if r is None:
            return None
        if not isinstance(r, dict):
            raise BadReply("eth_getTransactionReceipt: expected an object or null")
        if r.get("blockNumber") is None:  # some nodes answer pending ones
            return None
        if hash32(r.get("transactionHash"), "receipt transactionHash") != tx_hash.lower():
            raise BadReply("receipt is for another transaction")
        status = qty(r.get("status"), "receipt status", 1)
        return {"hash": tx_hash.lower(), "status": status,
                "block": qty(r.get("blockNumber"), "receipt blockNumber", _U64)}

    def call(self, to, calldata):
        return data(self.rpc.call("eth_call", ({"to": to, "data": _hex(calldata)}, "latest")),
                    "eth_call")

    def erc20_balance(self, token, owner):
        out = self.call(token, eth.erc20_balance_of_data(owner))
        if len(out) != 32:
            raise BadReply("balanceOf: expected 32 bytes, got %d" % len(out))
        return int.from_bytes(out, "big")

    def erc20_decimals(self, token):
        out = self.call(token, _DECIMALS)
        if len(out) != 32:  # also an address without code: eth_call answers "0x"
            raise BadReply("decimals() of %s: expected 32 bytes, got %d" % (token, len(out)))
        n = int.from_bytes(out, "big")
        if n > 255:
            raise BadReply("decimals() of %s: %d is not a uint8" % (token, n))
        return n
