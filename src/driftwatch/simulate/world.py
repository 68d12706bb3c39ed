"""The simulated population: customers and cards, merchants, places, networks.

Built once per run from the seed, then extended by campaigns (attacker cards,
fraudulent merchants). All tables are parallel numpy arrays indexed by entity
number; the encoder turns numbers into ids (``c-00000042``, ``m-000017`` ...).

Legitimate customers have a home city and country, an age, a spending level, an
activity level (gamma distributed, so a few cards make many transactions), one
to three devices, a home IP (households share one) and sometimes a mobile IP
from a carrier pool (carrier-grade NAT: many customers per address). Some travel
during the run: their card-present purchases then happen at the destination
(legitimate geo jumps). Merchants have a category, a country, a location, an
acquirer IP and a registration date; card-present merchants are per (category,
city), e-commerce merchants per category with a share abroad, a few of which pay
out through ``INTL-PAY-`` international payment facilitators.

>>> w = build_world(np.random.default_rng(0), n_customers=500, start_day=20528)
>>> w.n_customers, w.n_cards >= 500, w.merchant_mcc.shape == w.merchant_country.shape
(500, True, True)
>>> w.beneficiary(w.merchant_of_name("INTL-PAY-")).startswith("INTL-PAY-")
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.catalog import (
    CITIES,
    ECOM_FOREIGN,
    HOME_COUNTRIES,
    MccCatalog,
    country_centre,
    mcc_catalog,
)

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

PAYEE_BASE = 1 << 40  # beneficiary codes >= this are payees (persons), below are merchants
DEVICE_FRESH_BASE = 50_000_000  # first device number handed out as "new device"
DEVICE_TERMINAL_BASE = 900_000_000  # card-present terminals: base + merchant
MERCHANTS_PER_CELL = 24_000  # scale of the card-present merchant population
ECOM_MERCHANTS = 9_000  # scale of the e-commerce merchant population
TRIP_LOOKBACK_DAYS = 14.0  # longest trip: trips started this long before the run count
INTL_RANK = 8  # popularity rank of the guaranteed INTL-PAY- merchant of a category
NEIGHBOURHOODS = 300  # points per city shared by homes and shops (geo precision ~1 km)

_ADJ = ("BLUE", "GREEN", "NORTH", "SUNNY", "OLD TOWN", "CITY", "PRIME", "BRIGHT", "SILVER",
        "GOLDEN", "MAPLE", "RIVER", "UNION", "METRO", "CORNER", "ROYAL", "EAGLE", "HARBOR",
        "SUMMIT", "LIBERTY", "PACIFIC", "ATLAS", "NOVA", "URBAN")
_NOUN = ("MARKET", "STORE", "SHOP", "TRADING", "SUPPLY", "GOODS", "OUTLET", "DEPOT", "HOUSE",
         "WORKS", "SERVICES", "MART", "CENTER", "DIRECT", "ONLINE", "PLUS", "HUB", "CO")
_FIRST = ("JAMES", "MARY", "ROBERT", "PATRICIA", "JOHN", "JENNIFER", "MICHAEL", "LINDA",
          "DAVID", "ELIZABETH", "WILLIAM", "BARBARA", "RICHARD", "SUSAN", "JOSEPH", "JESSICA",
          "THOMAS", "SARAH", "PRIYA", "RAHUL", "ANNA", "LUCAS", "EMMA", "NOAH", "OLIVIA",
          "WEI", "FATIMA", "CARLOS", "SOFIA", "KENJI")
_LAST = ("SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS",
         "RODRIGUEZ", "MARTINEZ", "HERNANDEZ", "LOPEZ", "WILSON", "ANDERSON", "TAYLOR",
         "THOMAS", "MOORE", "MARTIN", "LEE", "PEREZ", "SHARMA", "PATEL", "MUELLER", "SCHMIDT",
         "NGUYEN", "KIM", "CHEN", "SINGH", "KHAN", "COHEN")
INTL_WORDS = ("GLOBALSERV", "WORLDPAY", "TRANSFAST", "EUROLINK", "ASIABRIDGE", "SWIFTCART",
              "PAYNOVA", "CROSSPAY", "OMNIREMIT", "BLUEWIRE", "FASTLANE", "UNITRADE")
"""Words of the international payee names (``INTL-PAY-<WORD>-<digits>``); attackers reuse them."""

_ADJ_S = np.array(_ADJ, dtype="S")
_NOUN_S = np.array(_NOUN, dtype="S")
_FIRST_S = np.array(_FIRST, dtype="S")
_LAST_S = np.array(_LAST, dtype="S")
_INTL_S = np.array(INTL_WORDS, dtype="S")

_PUBLIC_FIRST_OCTETS = np.array(
    [12, 24, 32, 38, 45, 47, 50, 63, 64, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97,
     98, 99, 104, 107, 108, 142, 162, 166, 172, 173, 174, 184, 208, 209, 216]
)


def random_public_ips(rng: np.random.Generator, n: int) -> I64:
    """``n`` random public IPv4 addresses (as integers) outside every range the
    campaigns use (TEST-NETs, 103.21.244.0/24) and outside private space."""
    first = rng.choice(_PUBLIC_FIRST_OCTETS, n)
    second = rng.integers(0, 256, n)
    # 172.16.0.0/12 is private: keep 172.x public by avoiding 16..31
    second = np.where((first == 172) & (second >= 16) & (second < 32), second + 16, second)
    rest = rng.integers(1, 1 << 16, n)
    return ((first.astype(np.int64) << 24) | (second << 16) | rest).astype(np.int64)


def ip_to_int(text: str) -> int:
    """Dotted IPv4 to an integer.

    >>> ip_to_int("103.21.244.12")
    1729491980
    """
    a, b, c, d = (int(p) for p in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def haversine_km(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Great-circle distance in km between arrays of coordinates (degrees).

    Computed in float32 (metre precision, several times faster on big arrays).

    >>> round(float(haversine_km(np.array([51.5074]), np.array([-0.1278]),
    ...                          np.array([40.7128]), np.array([-74.0060]))[0]))
    5570
    """
    f32 = np.float32
    p1 = np.radians(np.asarray(lat1, f32))
    p2 = np.radians(np.asarray(lat2, f32))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, f32) - np.asarray(lon1, f32))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    d = 2 * f32(6371.0088) * np.arcsin(np.sqrt(np.clip(a, f32(0.0), f32(1.0))))
    return np.asarray(d, dtype=np.float64)


class World:
    """Entity tables of one run (customers, cards, merchants, places, names)."""

    def __init__(self, catalog: MccCatalog, start_day: int) -> None:
        self.catalog = catalog
        self.start_day = start_day
        self.countries: list[str] = []
        self._country_index: dict[str, int] = {}
        self.city_lat = np.array([c[2] for c in CITIES])
        self.city_lon = np.array([c[3] for c in CITIES])
        self.city_country = np.array([self.country(c[1]) for c in CITIES], dtype=np.int32)
        self.city_weight = np.array([c[4] for c in CITIES])
        # locations; each city has NEIGHBOURHOODS points that homes and shops share
        self.loc_lat = np.zeros(0)
        self.loc_lon = np.zeros(0)
        self.city_places = np.zeros((len(CITIES), 0), np.int32)
        # customers
        self.n_customers = 0
        self.cust_home_city = np.zeros(0, np.int32)
        self.cust_home_loc = np.zeros(0, np.int32)
        self.cust_country = np.zeros(0, np.int32)
        self.cust_age = np.zeros(0, np.int16)
        self.cust_spend = np.zeros(0)
        self.cust_activity = np.zeros(0)
        self.cust_devices = np.zeros(0, np.int8)
        self.cust_home_ip = np.zeros(0, np.int64)
        self.cust_mobile_ip = np.zeros(0, np.int64)
        # trips (at most one per customer; inactive: start = end = 0)
        self.trip_start = np.zeros(0, np.int64)
        self.trip_end = np.zeros(0, np.int64)
        self.trip_city = np.zeros(0, np.int32)
        self.trip_loc = np.zeros(0, np.int32)
        self.trip_ip = np.zeros(0, np.int64)
        # cards
        self.card_customer = np.zeros(0, np.int32)
        self.cust_card = np.zeros(0, np.int32)  # primary card of each customer
        self.cust_card2 = np.zeros(0, np.int32)  # second card or -1
        self.card_habit = np.zeros(0)  # expected transactions per day
        # merchants
        self.merchant_mcc = np.zeros(0, np.int32)
        self.merchant_country = np.zeros(0, np.int32)
        self.merchant_registered = np.zeros(0, np.int64)  # days since epoch
        self.merchant_loc = np.zeros(0, np.int32)
        self.merchant_ip = np.zeros(0, np.int64)
        self.merchant_intl = np.zeros(0, np.bool_)
        self.merchant_name: dict[int, str] = {}  # explicit descriptors (campaigns)
        self.cell_start = np.zeros((0, 0), np.int64)
        self.cell_count = np.zeros((0, 0), np.int64)
        self.ecom_start = np.zeros(0, np.int64)
        self.ecom_count = np.zeros(0, np.int64)
        # explicit beneficiary names (negative codes)
        self.names: list[str] = []
        self._name_index: dict[str, int] = {}
        self.n_payees = 1

    # -- small registries --------------------------------------------------------------
    def country(self, code: str) -> int:
        """Index of a country code (registered on first use)."""
        idx = self._country_index.get(code)
        if idx is None:
            idx = len(self.countries)
            self.countries.append(code)
            self._country_index[code] = idx
        return idx

    def add_locations(self, lat: F64, lon: F64) -> I32:
        """Append coordinates; returns their location indices."""
        base = self.loc_lat.shape[0]
        self.loc_lat = np.concatenate([self.loc_lat, np.round(np.clip(lat, -89.9, 89.9), 4)])
        lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
        self.loc_lon = np.concatenate([self.loc_lon, np.round(lon, 4)])
        return np.arange(base, base + len(lat), dtype=np.int32)

    def add_places(self, rng: np.random.Generator, per_city: int) -> None:
        """Create the neighbourhood points of every city."""
        k = len(CITIES)
        lat = np.repeat(self.city_lat, per_city) + rng.normal(0.0, 0.06, k * per_city)
        lon = np.repeat(self.city_lon, per_city) + rng.normal(0.0, 0.08, k * per_city)
        self.city_places = self.add_locations(lat, lon).reshape(k, per_city)

    def place_in(self, rng: np.random.Generator, city: npt.NDArray[np.integer]) -> I32:
        """A random neighbourhood point of each given city."""
        per_city = self.city_places.shape[1]
        return np.asarray(self.city_places[city, rng.integers(0, per_city, len(city))],
                          dtype=np.int32)

    def name_code(self, name: str) -> int:
        """Beneficiary code of an explicit name (registered on first use)."""
        idx = self._name_index.get(name)
        if idx is None:
            idx = len(self.names)
            self.names.append(name)
            self._name_index[name] = idx
        return -1 - idx

    def beneficiary(self, code: int) -> str:
        """The beneficiary name of a code (merchant descriptor, payee or explicit)."""
        return str(self.beneficiaries(np.array([code], np.int64))[0].decode())

    def beneficiaries(self, codes: I64) -> npt.NDArray[np.bytes_]:
        """Beneficiary names (bytes) of many codes, vectorised.

        Codes ``>= PAYEE_BASE`` are payees (persons), negative codes explicit
        names (:meth:`name_code`), the rest merchant descriptors.
        """
        add = np.strings.add
        codes = np.asarray(codes, np.int64)
        out = np.empty(len(codes), dtype=object)
        payee = codes >= PAYEE_BASE
        explicit = codes < 0
        merchant = ~payee & ~explicit
        if payee.any():
            p = codes[payee] - PAYEE_BASE
            out[payee] = add(add(add(add(_FIRST_S[p % len(_FIRST)], b" "),
                                     _LAST_S[(p // len(_FIRST)) % len(_LAST)]), b" "),
                             p.astype("S")).astype(object)
        if explicit.any():
            out[explicit] = [self.names[-1 - c].encode() for c in codes[explicit].tolist()]
        if merchant.any():
            m = codes[merchant]
            digits = m.astype("S")
            plain = add(add(add(add(_ADJ_S[m % len(_ADJ)], b" "),
                                _NOUN_S[(m // len(_ADJ)) % len(_NOUN)]), b" "), digits)
            intl = add(add(add(b"INTL-PAY-", _INTL_S[m % len(INTL_WORDS)]), b"-"), digits)
            names = np.where(self.merchant_intl[m], intl, plain).astype(object)
            for i in np.flatnonzero(np.isin(m, np.array(sorted(self.merchant_name), np.int64))
                                    ).tolist():
                names[i] = self.merchant_name[int(m[i])].encode()
            out[merchant] = names
        return np.asarray(out.astype("S"))

    def merchant_of_name(self, prefix: str) -> int:
        """The first merchant whose descriptor starts with ``prefix`` (or -1)."""
        for m in np.flatnonzero(self.merchant_intl).tolist():
            if self.beneficiary(m).startswith(prefix):
                return int(m)
        return -1

    @property
    def n_cards(self) -> int:
        return int(self.card_customer.shape[0])

    @property
    def n_merchants(self) -> int:
        return int(self.merchant_mcc.shape[0])

    # -- entities ----------------------------------------------------------------------
    def add_merchants(
        self,
        mcc: I32,
        country: I32,
        registered_day: I64,
        loc: I32,
        ip: I64,
        intl: npt.NDArray[np.bool_] | None = None,
    ) -> I64:
        """Append merchants; returns their indices."""
        base = self.n_merchants
        n = len(mcc)
        self.merchant_mcc = np.concatenate([self.merchant_mcc, mcc.astype(np.int32)])
        self.merchant_country = np.concatenate([self.merchant_country, country.astype(np.int32)])
        self.merchant_registered = np.concatenate(
            [self.merchant_registered, registered_day.astype(np.int64)]
        )
        self.merchant_loc = np.concatenate([self.merchant_loc, loc.astype(np.int32)])
        self.merchant_ip = np.concatenate([self.merchant_ip, ip.astype(np.int64)])
        flags = np.zeros(n, np.bool_) if intl is None else intl
        self.merchant_intl = np.concatenate([self.merchant_intl, flags])
        return np.arange(base, base + n, dtype=np.int64)

    def add_customers(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        home_city: I32,
        activity: F64,
        habit: F64 | None = None,
    ) -> I32:
        """Append ``n`` customers with one card each; returns their card indices."""
        base = self.n_customers
        self.cust_home_city = np.concatenate([self.cust_home_city, home_city.astype(np.int32)])
        self.cust_home_loc = np.concatenate([self.cust_home_loc, self.place_in(rng, home_city)])
        self.cust_country = np.concatenate([self.cust_country, self.city_country[home_city]])
        age = np.clip(np.round(rng.normal(44.0, 15.0, n)), 18, 95).astype(np.int16)
        self.cust_age = np.concatenate([self.cust_age, age])
        self.cust_spend = np.concatenate([self.cust_spend, rng.lognormal(0.0, 0.45, n)])
        self.cust_activity = np.concatenate([self.cust_activity, activity])
        self.cust_devices = np.concatenate(
            [self.cust_devices, rng.choice([1, 2, 3], n, p=[0.45, 0.4, 0.15]).astype(np.int8)]
        )
        home_ip = random_public_ips(rng, n)
        share = rng.random(n) < 0.12  # households behind one address
        home_ip[1:][share[1:]] = home_ip[:-1][share[1:]]
        self.cust_home_ip = np.concatenate([self.cust_home_ip, home_ip])
        self.cust_mobile_ip = np.concatenate([self.cust_mobile_ip, np.zeros(n, np.int64)])
        zeros = np.zeros(n, np.int64)
        self.trip_start = np.concatenate([self.trip_start, zeros])
        self.trip_end = np.concatenate([self.trip_end, zeros])
        self.trip_city = np.concatenate([self.trip_city, home_city.astype(np.int32)])
        self.trip_loc = np.concatenate([self.trip_loc, self.cust_home_loc[base:]])
        self.trip_ip = np.concatenate([self.trip_ip, home_ip])
        cards = np.arange(self.n_cards, self.n_cards + n, dtype=np.int32)
        self.card_customer = np.concatenate(
            [self.card_customer, np.arange(base, base + n, dtype=np.int32)]
        )
        self.cust_card = np.concatenate([self.cust_card, cards])
        self.cust_card2 = np.concatenate([self.cust_card2, np.full(n, -1, np.int32)])
        self.card_habit = np.concatenate(
            [self.card_habit, np.ones(n) if habit is None else habit]
        )
        self.n_customers += n
        return cards

    def device_of(self, card: I32, k: npt.NDArray[np.int64]) -> I64:
        """The ``k``-th known device of each card's customer (k wraps)."""
        cust = self.card_customer[card]
        return cust.astype(np.int64) * 4 + k % self.cust_devices[cust]


# ------------------------------------------------------------------------------------------
def _choose(rng: np.random.Generator, weights: F64, n: int) -> npt.NDArray[np.intp]:
    cum = np.cumsum(weights)
    pos = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    return np.asarray(np.minimum(pos, len(weights) - 1), dtype=np.intp)


def build_world(
    rng: np.random.Generator,
    *,
    n_customers: int,
    start_day: int,
    days: float = 1.0,
    daily_rate: float | None = None,
    trip_rate_per_day: float = 0.005,
    catalog: MccCatalog | None = None,
) -> World:
    """Build the legitimate population.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_customers : int
        Customers (one card each, 15 % have a second card).
    start_day : int
        Day of the start of the run, in days since the Unix epoch.
    days : float
        Length of the run (trips are spread over it).
    daily_rate : float, optional
        Expected legitimate transactions per day, to set each card's habitual
        daily count (``card_habit``); default: one per card.
    trip_rate_per_day : float
        Probability per customer and day of starting a trip.
    """
    cat = catalog or mcc_catalog()
    w = World(cat, start_day)
    w.add_places(rng, NEIGHBOURHOODS)
    # --- customers: home country, then a city of it ---------------------------------
    countries = list(HOME_COUNTRIES)
    cidx = _choose(rng, np.array([HOME_COUNTRIES[c] for c in countries]), n_customers)
    home_city = np.zeros(n_customers, np.int32)
    city_codes = [c[1] for c in CITIES]
    for k, code in enumerate(countries):
        sel = np.flatnonzero(cidx == k)
        cities = np.array([i for i, c in enumerate(city_codes) if c == code])
        home_city[sel] = cities[_choose(rng, w.city_weight[cities], len(sel))]
    activity = rng.gamma(0.8, 1.25, n_customers)
    w.add_customers(rng, n_customers, home_city=home_city, activity=activity)
    total = daily_rate if daily_rate is not None else float(n_customers)
    w.card_habit = activity / activity.sum() * total
    # a second card for 15 % of customers, sharing the activity
    two = np.flatnonzero(rng.random(n_customers) < 0.15).astype(np.int32)
    second = np.arange(w.n_cards, w.n_cards + len(two), dtype=np.int32)
    w.card_customer = np.concatenate([w.card_customer, two])
    w.cust_card2[two] = second
    w.card_habit = np.concatenate([w.card_habit, w.card_habit[two] * 0.3])
    w.card_habit[two] *= 0.7
    # mobile carriers: carrier-grade NAT pools shared by many customers
    pool = random_public_ips(rng, max(50, n_customers // 60))
    mobile = rng.random(n_customers) < 0.35
    w.cust_mobile_ip = np.where(
        mobile, pool[rng.integers(0, len(pool), n_customers)], w.cust_home_ip
    )
    # --- trips ---------------------------------------------------------------------------
    p_trip = min(0.9, trip_rate_per_day * (days + TRIP_LOOKBACK_DAYS))
    travellers = np.flatnonzero(rng.random(n_customers) < p_trip)
    nt = len(travellers)
    day_ms = 86_400_000
    t0 = start_day * day_ms
    # trips may have started before the run: the share of travellers is stationary
    offset = rng.random(nt) * (days + TRIP_LOOKBACK_DAYS) - TRIP_LOOKBACK_DAYS
    w.trip_start[travellers] = t0 + (offset * day_ms).astype(np.int64)
    w.trip_end[travellers] = w.trip_start[travellers] + (
        np.clip(rng.lognormal(np.log(3.0), 0.6, nt), 0.5, 14.0) * day_ms
    ).astype(np.int64)
    home_ctry = w.cust_country[travellers]
    dest = _choose(rng, w.city_weight + 0.6, nt).astype(np.int32)
    foreign = rng.random(nt) < 0.35
    # domestic trips: redraw until the country matches (a few passes suffice)
    for _ in range(8):
        bad = ~foreign & (w.city_country[dest] != home_ctry)
        if not bad.any():
            break
        dest[bad] = _choose(rng, w.city_weight + 0.6, int(bad.sum()))
    same_city = dest == w.cust_home_city[travellers]
    dest[same_city] = (dest[same_city] + 1) % len(CITIES)
    w.trip_city[travellers] = dest
    w.trip_loc[travellers] = w.place_in(rng, dest)
    w.trip_ip[travellers] = random_public_ips(rng, nt)
    # --- card-present merchants per (mcc, city) ---------------------------------------
    n_codes, n_cities = len(cat.codes), len(CITIES)
    present = cat.share * (1.0 - cat.ecom_share)
    present[[i for i, m in enumerate(cat.mode) if m == "transfer"]] = 0.0
    city_w = w.city_weight / w.city_weight.sum()
    counts = np.maximum(
        1, np.round(MERCHANTS_PER_CELL * present[:, None] * city_w[None, :] * 3.0)
    ).astype(np.int64)
    counts[present == 0.0, :] = 0
    w.cell_count = counts
    w.cell_start = (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)
    total_cp = int(counts.sum())
    mcc_of = np.repeat(np.repeat(np.arange(n_codes), n_cities), counts.ravel())
    city_of = np.repeat(np.tile(np.arange(n_cities), n_codes), counts.ravel())
    loc = w.place_in(rng, city_of)
    w.add_merchants(
        mcc_of.astype(np.int32),
        w.city_country[city_of],
        start_day - _merchant_ages(rng, total_cp),
        loc,
        random_public_ips(rng, total_cp),
    )
    # --- e-commerce (and transfer service) merchants per mcc ------------------------
    online = cat.share * cat.ecom_share
    online[[i for i, m in enumerate(cat.mode) if m == "transfer"]] = cat.share[
        [i for i, m in enumerate(cat.mode) if m == "transfer"]
    ]
    ecounts = np.where(online > 0, np.maximum(3, np.round(ECOM_MERCHANTS * online)), 0)
    ecounts = ecounts.astype(np.int64)
    w.ecom_count = ecounts
    w.ecom_start = w.n_merchants + np.cumsum(ecounts) - ecounts
    total_e = int(ecounts.sum())
    emcc = np.repeat(np.arange(n_codes), ecounts).astype(np.int32)
    fcodes = list(ECOM_FOREIGN)
    abroad = rng.random(total_e) < 0.28
    fk = _choose(rng, np.array([ECOM_FOREIGN[c] for c in fcodes]), total_e)
    ecountry = np.where(
        abroad, np.array([w.country(c) for c in fcodes])[fk], w.country("US")
    ).astype(np.int32)
    # INTL-PAY- facilitators are mid-sized: never among a category's five most
    # popular merchants; every sizeable online category has at least one (rank
    # INTL_RANK), so the prefix alone is never a signal
    first = np.cumsum(ecounts) - ecounts
    rank = np.arange(total_e) - first[emcc]
    intl = abroad & (rank >= 5) & (rng.random(total_e) < 0.06)
    for i in np.flatnonzero(ecounts >= 20).tolist():
        lo, hi = int(first[i]), int(first[i] + ecounts[i])
        if not intl[lo:hi].any():
            j = lo + INTL_RANK
            intl[j] = abroad[j] = True
            if ecountry[j] == w.country("US"):
                ecountry[j] = w.country("GB")
    centres = np.array([country_centre(w.countries[c]) for c in ecountry.tolist()])
    eloc = w.add_locations(
        centres[:, 0] + rng.normal(0, 0.3, total_e), centres[:, 1] + rng.normal(0, 0.3, total_e)
    )
    w.add_merchants(
        emcc, ecountry, start_day - _merchant_ages(rng, total_e), eloc,
        random_public_ips(rng, total_e), intl,
    )
    w.n_payees = max(1000, n_customers * 2)
    return w


def _merchant_ages(rng: np.random.Generator, n: int) -> I64:
    """Days since registration: mostly years, 2 % registered in the last year."""
    years = np.exp(rng.uniform(np.log(1.0), np.log(20.0), n)) * 365.0
    young = rng.random(n) < 0.02
    years[young] = rng.uniform(30.0, 365.0, int(young.sum()))
    return years.astype(np.int64)
