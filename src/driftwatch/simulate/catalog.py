"""The fixed world of the simulator: merchant categories, cents profiles, cities.

Nothing here depends on the seed: the MCC volumes, amount shapes and cents
profiles are the *configured* ground truth that tests compare generated traffic
against (e.g. a chi-square of the cents of one MCC against :func:`cents_profile`).

Amount shape per MCC: the whole-unit part is log-normal (median, sigma) times a
per-customer spending multiplier, so first digits come out close to Benford; the
cents are drawn independently from the MCC's cents profile, an archetype
(uniform "metered" cents, retail ``.99/.49/.95`` price points, restaurant ``.00``
tips, subscription ``.99/.95``, round transfers, cash) with bump sizes that
differ a little by MCC.

>>> cat = mcc_catalog()
>>> len(cat.codes) > 250, cat.codes[cat.index["5967"]]
(True, '5967')
>>> round(float(cat.share[cat.index["5967"]]), 4)
0.0035
>>> p = cents_profile("5967")
>>> round(float(p.sum()), 12), int(p.argmax())
(1.0, 99)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------
# Cents archetypes: (share of uniform cents, {cents value: bump share})
# --------------------------------------------------------------------------------------
CENTS_ARCHETYPES: dict[str, tuple[float, dict[int, float]]] = {
    "metered": (0.97, {0: 0.03}),
    "retail": (0.78, {99: 0.10, 0: 0.06, 49: 0.02, 95: 0.03, 50: 0.01}),
    "restaurant": (0.83, {0: 0.12, 50: 0.04, 99: 0.01}),
    "service": (0.55, {0: 0.35, 50: 0.05, 99: 0.03, 95: 0.02}),
    "subscription": (0.51, {99: 0.25, 95: 0.06, 0: 0.15, 49: 0.03}),
    "round": (0.25, {0: 0.70, 50: 0.05}),
    "cash": (0.0, {0: 1.0}),
}

MODES = ("mixed", "transfer", "atm")
# Channel modes of a category: "mixed" (card present or e-commerce by ecom share),
# "transfer" (account to account), "atm" (cash).
# group: (amount median, log sigma, cents archetype, ecom share, mode, codes)
_GROUPS: dict[str, tuple[float, float, str, float, str, str]] = {
    "grocery": (38.0, 0.85, "retail", 0.05, "mixed", "5411 5422 5441 5451 5462 5499"),
    "restaurant": (36.0, 0.75, "restaurant", 0.03, "mixed", "5811 5812 5813"),
    "fast_food": (11.0, 0.65, "retail", 0.12, "mixed", "5814"),
    "fuel": (42.0, 0.55, "metered", 0.0, "mixed", "5541 5542 5983 5172"),
    "transport": (14.0, 0.85, "metered", 0.35, "mixed",
                  "4011 4111 4112 4119 4121 4131 4214 4215 4225 4411 4457 4468 4784 4789"),
    "travel": (320.0, 0.95, "service", 0.75, "mixed",
               "3000 3001 3005 3007 3008 3010 3015 3020 3058 3256 3351 3357 3366 3387 "
               "3501 3502 3504 3509 3513 3530 3543 3604 3640 3665 3692 3750 4511 4582 "
               "4722 4723 7011 7012 7032 7033 7512 7513 7519"),
    "general_retail": (52.0, 1.0, "retail", 0.35, "mixed",
                       "5200 5300 5309 5310 5311 5331 5399 5999 5931 5932 5933 5937"),
    "apparel": (68.0, 0.85, "retail", 0.45, "mixed",
                "5611 5621 5631 5641 5651 5655 5661 5681 5691 5697 5698 5699 5137 5139"),
    "electronics": (140.0, 1.1, "retail", 0.5, "mixed",
                    "5045 5065 5722 5732 5733 5734 5735 5946 5044 5046"),
    "home": (105.0, 1.1, "retail", 0.3, "mixed",
             "5021 5039 5051 5072 5074 5085 5198 5211 5231 5251 5261 5271 5712 5713 5714 "
             "5718 5719 5950 5992 5996"),
    "specialty_retail": (48.0, 1.0, "retail", 0.4, "mixed",
                         "5094 5099 5111 5131 5192 5193 5199 5921 5940 5941 5942 5943 5944 "
                         "5945 5947 5948 5949 5970 5971 5972 5973 5975 5976 5977 5978 5993 "
                         "5994 5995 5997 5998 5561 5571 5592 5598 5599"),
    "digital": (11.0, 1.0, "subscription", 1.0, "mixed", "5815 5816 5817 5818 7372 4816"),
    "direct_marketing": (34.0, 0.9, "subscription", 0.95, "mixed",
                         "5960 5962 5963 5964 5965 5966 5967 5968 5969"),
    "telecom_utilities": (78.0, 0.7, "metered", 0.8, "mixed", "4812 4814 4821 4899 4900"),
    "health": (85.0, 1.0, "service", 0.1, "mixed",
               "5047 5122 5912 5975 8011 8021 8031 8041 8042 8043 8049 8050 8062 8071 8099"),
    "personal_services": (55.0, 0.95, "service", 0.3, "mixed",
                          "7210 7211 7216 7217 7221 7230 7251 7261 7273 7276 7277 7278 7296 "
                          "7297 7298 7299 7311 7321 7333 7338 7339 7342 7349 7361 7375 7379 "
                          "7392 7393 7394 7395 7399"),
    "auto": (230.0, 1.1, "service", 0.1, "mixed",
             "5013 5511 5521 5531 5532 5533 5551 5571 5599 7523 7531 7534 7535 7538 7542 "
             "7549"),
    "repair": (160.0, 1.0, "service", 0.15, "mixed", "7622 7623 7629 7631 7641 7692 7699"),
    "entertainment": (45.0, 0.95, "service", 0.55, "mixed",
                      "7829 7832 7841 7911 7922 7929 7932 7933 7941 7991 7992 7993 7994 7996 "
                      "7997 7998 7999"),
    "professional": (190.0, 1.1, "service", 0.4, "mixed",
                     "8111 8211 8220 8241 8244 8249 8299 8351 8734 8911 8931 8999 6513"),
    "membership": (48.0, 0.9, "round", 0.85, "mixed", "8398 8641 8651 8661 8675 8699"),
    "government": (115.0, 1.0, "round", 0.55, "mixed", "9211 9222 9311 9399 9402"),
    "contractors": (380.0, 1.1, "service", 0.2, "mixed",
                    "0742 0763 0780 1520 1711 1731 1740 1750 1761 1771 1799 2741 2791 2842"),
    "wholesale": (290.0, 1.2, "retail", 0.5, "mixed", "5169 5197 4458 5398"),
    "financial": (95.0, 1.0, "round", 0.9, "mixed", "6012 6051 6211 6300 6540 7995"),
    "money_transfer": (140.0, 1.1, "round", 0.0, "transfer", "4829"),
    "cash": (80.0, 0.7, "cash", 0.0, "atm", "6010 6011"),
}

# Explicit volume weights of the big categories (per cent of all transactions);
# every other code shares the rest with Zipf-like weights in a fixed order.
_TOP_WEIGHTS: dict[str, float] = {
    "5411": 11.0, "5812": 8.5, "5814": 6.5, "5541": 4.5, "5542": 3.0, "5999": 3.5,
    "5311": 3.0, "5310": 2.5, "5912": 2.5, "4121": 2.0, "5815": 2.5, "5732": 1.4,
    "4111": 1.5, "5300": 1.2, "5691": 1.2, "5651": 1.0, "6011": 2.6, "4829": 1.8,
    "4814": 1.2, "4900": 1.0, "5813": 1.2, "7011": 0.8, "4511": 0.8, "5816": 0.6,
    "5817": 0.5, "5818": 0.8, "5499": 1.0, "5200": 0.7, "5331": 0.8, "7832": 0.5,
    "5942": 0.5, "5921": 0.6, "7230": 0.4, "8062": 0.4, "8011": 0.5, "7372": 0.4,
    "4899": 0.6, "5734": 0.4, "5945": 0.4, "5661": 0.4, "5533": 0.4,
    "5967": 0.35,
}
_TAIL_EXPONENT = 1.05
_CATALOG_SEED = 18245  # ISO 18245: a fixed seed, the catalog never depends on the run


@dataclass(frozen=True)
class MccCatalog:
    """Every merchant category of the simulated world, with its fixed shape.

    Attributes are parallel arrays indexed by category position.
    """

    codes: tuple[str, ...]
    index: dict[str, int]
    share: F64
    amount_median: F64
    amount_sigma: F64
    ecom_share: F64
    mode: tuple[str, ...]
    mode_code: npt.NDArray[np.int8]  # 0 mixed, 1 transfer, 2 atm
    archetype: tuple[str, ...]
    cents: npt.NDArray[np.float64]  # shape (n_codes, 100), rows sum to 1
    cents_uniform: F64  # mass spread evenly over all 100 values
    cents_bumps: npt.NDArray[np.int64]  # (n_codes, K) cents values with extra mass
    cents_bump_cum: F64  # (n_codes, K) cumulative extra mass, last = 1 - uniform


def _bump_tables(cents: F64) -> tuple[F64, npt.NDArray[np.int64], F64]:
    """Split each cents profile into an even part and up to K bumps (exact)."""
    base = cents.min(axis=1)
    excess = cents - base[:, None]
    k = max(1, int((excess > 1e-15).sum(axis=1).max()))
    order = np.argsort(-excess, axis=1, kind="stable")[:, :k]
    values = order.astype(np.int64)
    mass = np.take_along_axis(excess, order, axis=1)
    return base * 100.0, values, np.cumsum(mass, axis=1)


def _cents_row(archetype: str, jitter: float) -> F64:
    uniform, bumps = CENTS_ARCHETYPES[archetype]
    row = np.zeros(100)
    scaled = {c: b * jitter for c, b in bumps.items()}
    total_bumps = sum(scaled.values())
    if uniform > 0:
        row += (1.0 - total_bumps) / 100.0
    else:
        row[:] = 0.0
    for c, b in scaled.items():
        row[c] += b
    return np.asarray(row / row.sum(), dtype=np.float64)


@functools.cache
def mcc_catalog() -> MccCatalog:
    """The fixed MCC catalog (built once; identical in every run)."""
    codes: list[str] = []
    meta: dict[str, tuple[float, float, str, float, str]] = {}
    for median, sigma, archetype, ecom, mode, text in _GROUPS.values():
        for code in text.split():
            if code in meta:
                continue
            codes.append(code)
            meta[code] = (median, sigma, archetype, ecom, mode)
    codes.sort()
    rng = np.random.default_rng(_CATALOG_SEED)
    tail = [c for c in codes if c not in _TOP_WEIGHTS]
    order = rng.permutation(len(tail))
    tail_w = 1.0 / (np.arange(1, len(tail) + 1) ** _TAIL_EXPONENT)
    tail_w *= (100.0 - sum(_TOP_WEIGHTS.values())) / tail_w.sum()
    weights = dict(_TOP_WEIGHTS)
    for rank, pos in enumerate(order):
        weights[tail[int(pos)]] = float(tail_w[rank])
    jitter = rng.uniform(0.7, 1.3, len(codes))
    median_jitter = rng.uniform(0.8, 1.25, len(codes))
    share = np.array([weights[c] for c in codes]) / 100.0
    cents = np.stack(
        [_cents_row(meta[c][2], float(j)) for c, j in zip(codes, jitter, strict=True)]
    )
    uniform, bumps, bump_cum = _bump_tables(cents)
    return MccCatalog(
        codes=tuple(codes),
        index={c: i for i, c in enumerate(codes)},
        share=share / share.sum(),
        amount_median=np.array([meta[c][0] for c in codes]) * median_jitter,
        amount_sigma=np.array([meta[c][1] for c in codes]),
        ecom_share=np.array([meta[c][3] for c in codes]),
        mode=tuple(meta[c][4] for c in codes),
        mode_code=np.array([MODES.index(meta[c][4]) for c in codes], np.int8),
        archetype=tuple(meta[c][2] for c in codes),
        cents=cents,
        cents_uniform=uniform,
        cents_bumps=bumps,
        cents_bump_cum=bump_cum,
    )


def cents_profile(mcc: str) -> F64:
    """The configured probability of each cents value 0..99 for ``mcc`` (legit traffic)."""
    cat = mcc_catalog()
    try:
        return np.array(cat.cents[cat.index[mcc]], dtype=np.float64)
    except KeyError:
        raise KeyError(f"unknown mcc {mcc!r}") from None


# --------------------------------------------------------------------------------------
# Cities: (name, country, lat, lon, weight as a home city)
# --------------------------------------------------------------------------------------
CITIES: tuple[tuple[str, str, float, float, float], ...] = (
    ("New York", "US", 40.7128, -74.0060, 16.0),
    ("Los Angeles", "US", 34.0522, -118.2437, 10.0),
    ("Chicago", "US", 41.8781, -87.6298, 7.0),
    ("Houston", "US", 29.7604, -95.3698, 6.0),
    ("Phoenix", "US", 33.4484, -112.0740, 4.0),
    ("Philadelphia", "US", 39.9526, -75.1652, 4.0),
    ("San Antonio", "US", 29.4241, -98.4936, 3.0),
    ("San Diego", "US", 32.7157, -117.1611, 3.0),
    ("Dallas", "US", 32.7767, -96.7970, 4.0),
    ("San Jose", "US", 37.3382, -121.8863, 2.5),
    ("Austin", "US", 30.2672, -97.7431, 2.5),
    ("Seattle", "US", 47.6062, -122.3321, 3.0),
    ("Denver", "US", 39.7392, -104.9903, 2.5),
    ("Boston", "US", 42.3601, -71.0589, 3.0),
    ("Miami", "US", 25.7617, -80.1918, 3.0),
    ("Atlanta", "US", 33.7490, -84.3880, 3.0),
    ("Minneapolis", "US", 44.9778, -93.2650, 2.0),
    ("Detroit", "US", 42.3314, -83.0458, 2.0),
    ("Nashville", "US", 36.1627, -86.7816, 1.5),
    ("Portland", "US", 45.5152, -122.6784, 1.5),
    ("Las Vegas", "US", 36.1699, -115.1398, 1.5),
    ("Toronto", "CA", 43.6532, -79.3832, 2.0),
    ("Vancouver", "CA", 49.2827, -123.1207, 1.0),
    ("London", "GB", 51.5074, -0.1278, 3.5),
    ("Manchester", "GB", 53.4808, -2.2426, 1.0),
    ("Berlin", "DE", 52.5200, 13.4050, 1.5),
    ("Munich", "DE", 48.1351, 11.5820, 1.0),
    ("Mumbai", "IN", 19.0760, 72.8777, 1.5),
    ("Delhi", "IN", 28.7041, 77.1025, 1.2),
    ("Bengaluru", "IN", 12.9716, 77.5946, 1.0),
    ("Paris", "FR", 48.8566, 2.3522, 0.5),
    ("Madrid", "ES", 40.4168, -3.7038, 0.3),
    ("Rome", "IT", 41.9028, 12.4964, 0.3),
    ("Amsterdam", "NL", 52.3676, 4.9041, 0.3),
    ("Dublin", "IE", 53.3498, -6.2603, 0.3),
    ("Mexico City", "MX", 19.4326, -99.1332, 0.4),
    ("Cancun", "MX", 21.1619, -86.8515, 0.1),
    ("Tokyo", "JP", 35.6762, 139.6503, 0.3),
    ("Singapore", "SG", 1.3521, 103.8198, 0.3),
    ("Hong Kong", "HK", 22.3193, 114.1694, 0.3),
    ("Dubai", "AE", 25.2048, 55.2708, 0.2),
    ("Sydney", "AU", -33.8688, 151.2093, 0.2),
    ("Bangkok", "TH", 13.7563, 100.5018, 0.1),
    ("Vilnius", "LT", 54.6872, 25.2797, 0.05),
    ("Nicosia", "CY", 35.1856, 33.3823, 0.05),
    ("Sao Paulo", "BR", -23.5505, -46.6333, 0.2),
)
"""Cities of the world: home cities weighted by ``weight``; all are travel targets."""

# Countries whose banks issue our customers' cards: the rest appear as merchants
# and travel destinations only.
HOME_COUNTRIES: dict[str, float] = {"US": 0.82, "CA": 0.04, "GB": 0.05, "DE": 0.03, "IN": 0.04,
                                    "FR": 0.01, "MX": 0.01}

# Countries of e-commerce merchants abroad (from a US customer's point of view),
# with weights.
ECOM_FOREIGN: dict[str, float] = {"GB": 3.0, "IE": 2.0, "NL": 1.5, "DE": 1.5, "CA": 2.0,
                                  "SG": 1.0, "HK": 1.0, "CN": 1.0, "LT": 0.4, "CY": 0.4,
                                  "AE": 0.4, "FR": 1.0, "JP": 0.5, "AU": 0.5}

# A centre point for countries that have no city in CITIES (e-commerce merchants).
COUNTRY_CENTRES: dict[str, tuple[float, float]] = {
    "CN": (31.2304, 121.4737), "IE": (53.3498, -6.2603), "NL": (52.3676, 4.9041),
}


def country_centre(country: str) -> tuple[float, float]:
    """A representative coordinate of ``country`` (its first listed city)."""
    for _name, ctry, lat, lon, _w in CITIES:
        if ctry == country:
            return lat, lon
    if country in COUNTRY_CENTRES:
        return COUNTRY_CENTRES[country]
    raise KeyError(f"unknown country {country!r}")
