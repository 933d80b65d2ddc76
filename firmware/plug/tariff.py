# The rate in force: the approved providers over time, the rate cache and the owner's
# policy where no rate is known (the descriptor and its checks: provider.py).
#
# A new provider (an approved change of payee, chain id, token, decimals, quote signer
# or rates format) takes effect at the end of the rate interval in force when it is
# accepted (the next interval boundary): energy before that is priced and paid as
# before. A new name, symbol or rates URL updates the provider in place (a rates URL
# that carries the date is not a new provider every refresh). Providers are numbered
# (pid) in approval order and a number is never reused; the oldest are dropped once no
# kept rate interval falls in their time and they ended two settlement periods ago.
#
# Rates are cached (durably, store name "tariff") as [start, end, rate_per_kwh] in
# plug time and refreshed one refresh period ahead of the end of the known rates,
# and at least every refresh_s. segments(t0, t1) gives the rates covering an energy
# interval; where no rate is known the owner's policy applies: "hold" (default:
# None, the energy waits unpriced, reported once per rate gap) or "rate" (config
# fallback_rate_per_kwh).
# A gap no rate will fill is closed: it lies before the current provider's start (no
# refresh reaches there), or a known rate follows it and either the gap ended
# settlement.max_period_s ago or (aWATTar, Energy-Charts) a refresh that asked from
# the gap's start succeeded after the gap's end. Under "hold" its energy is billed
# unpriced (rate None: a line of amount 0, reported once per gap), never at a guessed
# rate. aWATTar and Energy-Charts serve from about now on by default: while energy
# waits unpriced (and the rates ahead are known) the refresh asks them from its time
# (start=, in ms for aWATTar, in s for Energy-Charts).
# A token's decimals are read from the chain (token_decimals(address), an ERC-20
# decimals() call) before a descriptor is accepted; a mismatch is refused.
# Every refusal (network, HTTP status, size, JSON, field, signature, cap, deadline) is
# kept in `reports` as (plug time, reason) and logged as "[tariff] ...".
# A fetch blocks the event loop: the descriptor fetch and the rates refresh (all its
# Octopus pages) are one operation each, with one total deadline (`deadline_s`,
# provider.FETCH_DEADLINE_S). poll_steps() yields after each, so the money loop lets the
# meter and the HTTP server run between them.
from plug import rates
from plug.provider import (FETCH_DEADLINE_S, FETCH_TIMEOUT_S, TariffError, check_descriptor,
                           check_token_decimals, get_json, http_get, ms_now, same_provider)
from plug.rates import RateError

_MAX_PAGES = 4  # Octopus pagination: pages followed per refresh
_MAX_REPORTS = 8
_MAX_HELD = 4  # rate gaps remembered as reported
_MAX_BACKOFF = 3600
_WINDOWED = ("awattar", "energy-charts")  # serve from now on unless asked with start=


def _with_start(url, since, per_s):
    """url asking for rates from plug time `since` (Unix time x per_s), or url."""
    if since is None:
        return url
    return "%s%sstart=%d" % (url, "&" if "?" in url else "?", (since + rates.UNIX_2000) * per_s)


def _once(seen, key):
    """True the first time `key` is seen among the last _MAX_HELD keys."""
    if key in seen:
        return False
    seen.append(key)
    if len(seen) > _MAX_HELD:
        seen.pop(0)
    return True


class Tariff:
    def __init__(self, store, clock, config, http=None, log=print, token_decimals=None):
        self.store = store
        self.clock = clock
        self.pcfg = config["provider"]
        self.chain_id = config["chain"]["chain_id"]
        # providers are kept two settlement periods after they end (their billed lines
        # are invoiced within one)
        self.period_s = config.get("settlement", {}).get("max_period_s", 86400)
        self.keep_s = 2 * self.period_s
        self.timeout = FETCH_TIMEOUT_S  # seconds without a byte from the server
        self.deadline_s = FETCH_DEADLINE_S  # seconds per operation (all its requests)
        self._t0 = None  # ticks_ms when the operation in progress began
        self.get = http or self._get
        self.log = log
        self.reports = []  # the last few (plug time, reason), newest last
        self.report_count = 0  # reports ever made since boot
        st = store.load("tariff") or {}
        self.providers = st.get("prov", [])  # [[from_t, descriptor], ...] oldest first
        self.base = st.get("base", 0)  # pid of providers[0] (older ones were dropped)
        self.sched = st.get("sched", [])  # [[start, end, rate], ...] of all providers
        self.issued = st.get("issued", 0)  # newest native quote accepted (Unix s)
        self.next_desc = 0
        self.next_rates = 0
        self._fails = 0
        self._held = []  # the last few rate gaps reported as holding energy
        self._unpriced = []  # the last few closed gaps reported as billed unpriced
        self.token_decimals = token_decimals  # address -> decimals() on chain, or None
        self._dec_ok = []  # [token, decimals] read back from the chain since boot
        self._want = None  # earliest time energy waited unpriced since the last refresh
        self._asked = None  # (asked from, at) of the last aWATTar/Energy-Charts refresh

    # ---- state ----

    def _save(self):
        self.store.save("tariff", {"prov": self.providers, "base": self.base,
                                   "sched": self.sched, "issued": self.issued})

    def _trim(self, now):
        """Drop the oldest providers that no kept rate interval refers to and that ended
        more than keep_s ago; never the newest. Their numbers are not reused."""
        n = 0
        while n + 1 < len(self.providers):
            end = self.providers[n + 1][0]
            if end > now - self.keep_s or (self.sched and self.sched[0][0] < end):
                break
            n += 1
        if n:
            self.providers = self.providers[n:]
            self.base += n

    def _report(self, now, why):
        self.reports.append((now, why))
        self.report_count += 1
        if len(self.reports) > _MAX_REPORTS:
            self.reports.pop(0)
        if self.log:
            self.log("[tariff] %s" % why)

    def current(self):
        """The newest approved provider descriptor, or None."""
        return self.providers[-1][1] if self.providers else None

    def provider(self, pid):
        """Descriptor of provider number pid (its number in the approval history)."""
        i = pid - self.base
        if not 0 <= i < len(self.providers):
            raise TariffError("provider %d is not kept (kept: %d..%d)"
                              % (pid, self.base, self.base + len(self.providers) - 1))
        return self.providers[i][1]

    def _index_at(self, t):
        for i in range(len(self.providers) - 1, -1, -1):
            if self.providers[i][0] <= t:
                return i
        return -1

    def provider_at(self, t):
        """(pid, from_t) of the provider in force at plug time t, or (-1, None)."""
        i = self._index_at(t)
        return (i + self.base, self.providers[i][0]) if i >= 0 else (-1, None)

    def covered_until(self, t):
        """End of the gap-free run of known rates that contains t (t if none)."""
        i = rates.lookup(self.sched, t)
        if i < 0:
            return t
        end = self.sched[i][1]
        i += 1
        while i < len(self.sched) and self.sched[i][0] == end:
            end = self.sched[i][1]
            i += 1
        return end

    # ---- network ----

    def _get(self, url):
        """The body at url, within what is left of the operation's deadline."""
        return http_get(url, rates.MAX_BODY, self.timeout, self.deadline_s, self._t0, True)

    def poll(self, now=None):
        """Refresh descriptor and rates when due; never raises. True if rates changed."""
        changed = False
        for c in self.poll_steps(now):
            changed = changed or c
        return changed

    def poll_steps(self, now=None):
        """poll() one network operation at a time: a generator that yields after each
        (True if rates changed); never raises."""
        now = self.clock.time() if now is None else now
        if not self.pcfg.get("url"):
            if now >= self.next_desc:
                self._report(now, "no provider configured (config provider.url is empty)")
                self.next_desc = now + self.pcfg.get("refresh_s", 900)
            return
        if now >= self.next_desc:
            try:
                self.refresh_descriptor(now)
                self.next_desc = now + self.pcfg.get("refresh_s", 900)
            except (TariffError, RateError, OSError, ValueError) as e:
                self._report(now, "provider refused: %s" % e)
                self.next_desc = now + self._backoff()
            yield False
        if self.current() is not None and now >= self.next_rates:
            changed = False
            try:
                self.refresh_rates(now)
                changed = True
                self._fails = 0
            except (TariffError, RateError, OSError, ValueError) as e:
                self._report(now, "rates refused: %s" % e)
                self.next_rates = now + self._backoff()
            yield changed

    def _backoff(self):
        self._fails += 1
        return min(_MAX_BACKOFF, self.pcfg.get("refresh_s", 900), 15 << min(self._fails, 8))

    def refresh_descriptor(self, now):
        self._t0 = ms_now()  # one deadline for the fetch (the token check is an RPC call)
        d = check_descriptor(get_json(self.get, self.pcfg["url"]), self.pcfg, self.chain_id)
        cur = self.current()
        if cur == d:
            self._check_decimals(d, now, True)
            return False
        self._check_decimals(d, now, False)
        if cur is not None and same_provider(cur, d):
            # name, symbol or rates URL: the same provider, updated in place
            if cur["rates_url"] != d["rates_url"]:
                self.next_rates = 0
            self.providers[-1][1] = d
            self._trim(now)
            self._save()
            return False
        if cur is None:
            start = 0
        else:
            # takes effect at the next interval boundary: the end of the rate in force
            i = rates.lookup(self.sched, now)
            start = self.sched[i][1] if i >= 0 else now
            start = max(start, self.providers[-1][0])
            self.sched = [x for x in self.sched if x[1] <= start] + \
                [[x[0], start, x[2]] for x in self.sched if x[0] < start < x[1]]
            self.sched.sort(key=lambda x: x[0])
        if cur is not None and cur["signer"] != d["signer"]:
            self.issued = 0
        self.providers.append([start, d])
        self.next_rates = 0
        self._asked = None
        self._trim(now)
        self._save()
        if self.log:
            self.log("[tariff] provider %s (payee %s) in force from %d"
                     % (d["name"], d["payee"], start))
        return True

    def _check_decimals(self, d, now, in_force):
        """Refuse a token whose decimals() on chain differ from the descriptor's. For
        the provider in force (approved before) a mismatch is reported, not refused."""
        if self.token_decimals is None or d["token"] is None:
            return
        key = [d["token"].lower(), d["decimals"]]
        if key in self._dec_ok:
            return
        if not in_force:
            check_token_decimals(d, self.token_decimals)
        else:
            try:
                got = self.token_decimals(d["token"])
            except Exception:  # node away: asked again at the next refresh
                return
            if got != d["decimals"]:  # reported once per boot
                self._report(now, "provider in force: token %s has %d decimals on chain, "
                             "its descriptor says %d" % (d["token"], got, d["decimals"]))
        self._dec_ok.append(key)

    def fetch_rates(self, now, d=None, since=None):
        """Parsed, checked schedule of the current provider (no state change); aWATTar
        and Energy-Charts are asked for rates from plug time `since` if given."""
        d = d or self.current()
        self._t0 = ms_now()  # one deadline for the whole refresh, every page of it
        cap = self.pcfg.get("rate_cap_per_kwh")
        fmt, dec = d["format"], d["decimals"]
        if fmt == "native":
            from plug import rates_native

            q = get_json(self.get, d["rates_url"])
            sched, issued = rates_native.parse(q, self.chain_id, d["token"] or "native", dec,
                                               d["signer"], cap)
            if issued < self.issued:
                raise TariffError("native quote issued %d is older than the one in use (%d)"
                                  % (issued, self.issued))
            return sched, issued
        from plug import rates_fiat

        if fmt == "awattar":
            url = _with_start(d["rates_url"], since, 1000)
            return rates_fiat.parse_awattar(get_json(self.get, url), dec, cap)[0], None
        if fmt == "energy-charts":
            obj = get_json(self.get, _with_start(d["rates_url"], since, 1))
            return rates_fiat.parse_energy_charts(obj, dec, cap)[0], None
        # octopus: follow `next` for a few pages; open-ended rates run to a horizon
        horizon = now + 2 * self.pcfg.get("refresh_s", 900)
        url, out = d["rates_url"], []
        for _ in range(_MAX_PAGES):
            page, url = rates_fiat.parse_octopus(get_json(self.get, url), dec, horizon, cap)
            out = page + out  # later pages are older
            if not url:
                break
        out.sort(key=lambda x: x[0])
        return rates.check_schedule(out, cap, "octopus rates"), None

    def refresh_rates(self, now):
        d = self.current()
        start = self.providers[-1][0]
        refresh = self.pcfg.get("refresh_s", 900)
        since = asked = None
        if d["format"] in _WINDOWED:
            asked = now  # served from about now on
            # energy waits unpriced: ask from its time once the rates ahead are known
            if self._want is not None and self.covered_until(now) > now + refresh:
                # older gaps close by age: asking further back only grows the reply
                since = asked = max(self._want, start, now - self.period_s)
        sched, issued = self.fetch_rates(now, d, since)
        sched = [[max(s, start), e, r] for s, e, r in sched if e > start]
        self.sched = rates.merge(self.sched, sched)
        if len(self.sched) > rates.MAX_INTERVALS:
            self.sched = self.sched[-rates.MAX_INTERVALS:]
        if issued is not None:
            self.issued = issued
        self._trim(now)
        self._save()
        if asked is not None:
            self._asked = (asked, now)
        self._want = None  # set again by the next billing pass if energy still waits
        self.next_rates = max(now + 60, min(now + refresh, self.covered_until(now) - refresh))

    # ---- pricing ----

    def rate_at(self, t):
        """(rate_per_kwh, pid) at plug time t under the policy, or None (hold)."""
        seg = self._segments(t, t + 1)[0]
        return None if seg is None else (seg[0][2], seg[0][3])

    def segments(self, t0, t1):
        """[(start, end, rate_per_kwh, pid), ...] covering [t0, t1) without gaps, split at
        every rate and provider boundary; None if part of it has no rate (policy hold)
        or no provider was ever approved; rate None where a closed gap is billed
        unpriced. A rate gap that holds energy, or is billed unpriced, is reported once."""
        closed = []
        out, gap = self._segments(t0, t1, closed)
        if out is None and gap is not None:
            self._want = gap[1] if self._want is None else min(self._want, gap[1])
            # channels stuck at different gaps must not report in turn on every pass
            if _once(self._held, gap[0]):
                self._report(self.clock.time(), "energy from %d (plug time) waits unpriced: "
                             "no rate known (policy hold)" % gap[1])
        for t, end in closed:
            if _once(self._unpriced, end):
                self._report(self.clock.time(), "energy from %d to %d (plug time) billed "
                             "unpriced (amount 0): the provider has no rate for it" % (t, end))
        return out

    def _gap_closed(self, t, gap_end, p):
        """True if no refresh will give a rate for [t, gap_end) of provider index p."""
        if p + 1 < len(self.providers):
            return True  # before the current provider: its rates are no longer fetched
        if gap_end is None:
            return False  # no rate known after it yet
        a = self._asked
        return (self.clock.time() >= gap_end + self.period_s
                or (a is not None and a[0] <= t and a[1] >= gap_end))

    def _segments(self, t0, t1, closed=None):
        """(segments, None), or (None, (gap, t)) where policy hold stopped at plug time t:
        gap is the end of the last known rate before t (-1 if none), the same for every
        channel that reaches it. Closed gaps billed unpriced go to `closed` as (t, end of
        the gap)."""
        p = self._index_at(t0)
        if p < 0:
            return None, None
        fallback = self.pcfg.get("fallback") == "rate"
        out = []
        t = t0
        i = rates.lookup(self.sched, t0)
        if i < 0:  # first interval starting after t0
            i = 0
            while i < len(self.sched) and self.sched[i][1] <= t0:
                i += 1
        while t < t1:
            p = self._index_at(t)
            pid = p + self.base
            nxt_p = self.providers[p + 1][0] if p + 1 < len(self.providers) else t1
            if i < len(self.sched) and self.sched[i][0] <= t:
                s, e, r = self.sched[i]
                end = min(e, t1, nxt_p)
                out.append((t, end, r, pid))
                if end >= e:
                    i += 1
                t = end
                continue
            if not fallback:
                gap = self.sched[i - 1][1] if i > 0 and self.sched[i - 1][1] <= t else -1
                gap_end = self.sched[i][0] if i < len(self.sched) else None
                if not self._gap_closed(t, gap_end, p):
                    return None, (gap, t)
                bound = self.providers[p + 1][0] if p + 1 < len(self.providers) else gap_end
                if gap_end is not None:
                    bound = min(bound, gap_end)
                end = min(bound, t1)
                out.append((t, end, None, pid))
                if closed is not None:
                    closed.append((t, bound))
                t = end
                continue
            gap_end = self.sched[i][0] if i < len(self.sched) else t1
            end = min(gap_end, t1, nxt_p)
            out.append((t, end, self.pcfg.get("fallback_rate_per_kwh", 0), pid))
            t = end
        return out, None

    def status(self):
        d = self.current()
        rate = self.rate_at(self.clock.time()) if d else None
        return {"provider": d and d["name"], "name": d and d["name"], "payee": d and d["payee"],
                "token": d and d["token"],
                "currency": d and d["symbol"],
                "decimals": d and d["decimals"], "rate_per_kwh": rate and rate[0],
                "intervals": len(self.sched), "reports": [r[1] for r in self.reports[-3:]]}
