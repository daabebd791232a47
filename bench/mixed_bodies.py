#!/usr/bin/env python3
"""Request bodies for bench/mixed.sh: a seeded, realistic mix of read queries over the store
that `tradeledger generate` makes (dataset SYNTHETIC_TRADE, monthly periods from 1990-01, one
release per period, each revising the two periods before it).

Usage: mixed_bodies.py RELEASES COUNT SEED > bodies.jsonl   (one JSON request body per line)

What a dashboard or an analyst's front end asks, with its own operation text and variables:
breakdowns of a total by partner or product, single figures, a figure's history, filtered
listings, and now and then a revision summary; mostly recent periods (the last two years) but
the whole history too; mostly the latest figures, else as of a revision or a publication
time; several selections per operation. Keys and periods repeat the way popular pages do
(a few totals are asked far more often than deep keys), so the response cache can hit.
"""
import json
import random
import sys

releases, count, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
DATASET = "SYNTHETIC_TRADE"
# Keys with figures: the generator fills the first 168 keys of SECTOR x PARTNER x PRODUCT
# in dataset order, i.e. sector _T, partners _T and P01..P13, products _T and G01..G11.
PARTNERS = ["_T"] + [f"P{i:02d}" for i in range(1, 14)]
PRODUCTS = ["_T"] + [f"G{i:02d}" for i in range(1, 12)]


def period(i):
    m = 1990 * 12 + i
    return f"{m // 12}-{m % 12 + 1:02d}"


def published(i):
    """Publication time of release i (1990-02-15 plus i months), as the generator sets it."""
    m = 1990 * 12 + 1 + i
    return f"{m // 12}-{m % 12 + 1:02d}-15T00:00:00Z"


def pick_period():
    # The latest three months are asked most, then the last two years, then all of history.
    r = rng.random()
    if r < 0.4:
        return rng.randrange(max(0, releases - 3), releases)
    if r < 0.7:
        return rng.randrange(max(0, releases - 24), releases)
    return rng.randrange(0, releases)


def pick_key():
    # Totals and one-dimension keys are the popular pages; deep keys the long tail.
    r = rng.random()
    if r < 0.3:
        return "_T._T._T"
    if r < 0.6:
        return f"_T.{rng.choice(PARTNERS)}._T"
    if r < 0.8:
        return f"_T._T.{rng.choice(PRODUCTS)}"
    return f"_T.{rng.choice(PARTNERS)}.{rng.choice(PRODUCTS)}"


def pick_as_of(p):
    """None (latest) most of the time, else a revision or a publication time after period p."""
    r = rng.random()
    if r < 0.7:
        return None
    first = p + 2  # the revision that first published period p (revision 1 defines the dataset)
    if r < 0.85:
        return {"revision": rng.randrange(first, releases + 2)}
    return {"publishedAt": published(rng.randrange(p, releases))}


OBS_FIELDS = [
    "key value",
    "key value status revision",
    "key dimensions { code label } period value status",
    "key value preliminaryValue revisionFromPreliminary revisedFrom versionCount",
]


def breakdown():
    p = pick_period()
    dim = rng.choice(["PARTNER", "PARTNER", "PRODUCT"])
    total = "_T._T._T" if rng.random() < 0.7 else (
        f"_T._T.{rng.choice(PRODUCTS)}" if dim == "PARTNER" else f"_T.{rng.choice(PARTNERS)}._T")
    fields = rng.choice(OBS_FIELDS[:3])
    q = (f"query Breakdown($period: Period!, $dim: String!, $key: String, $asOf: AsOf) "
         f"{{ breakdown(dataset: \"{DATASET}\", dimension: $dim, period: $period, key: $key, asOf: $asOf) "
         f"{{ total {{ {fields} }} items {{ {fields} }} sumOfItems residual }} }}")
    return q, {"period": period(p), "dim": dim, "key": total, "asOf": pick_as_of(p)}


def observation():
    p = pick_period()
    fields = rng.choice(OBS_FIELDS)
    q = (f"query Figure($key: String!, $period: Period!, $asOf: AsOf) "
         f"{{ observation(dataset: \"{DATASET}\", key: $key, period: $period, asOf: $asOf) {{ {fields} }} }}")
    return q, {"key": pick_key(), "period": period(p), "asOf": pick_as_of(p)}


def history():
    p = pick_period()
    fields = rng.choice(["version value delta status", "revision value previousValue publishedAt release { id title }"])
    q = (f"query History($key: String!, $period: Period!) "
         f"{{ history(dataset: \"{DATASET}\", key: $key, period: $period) {{ {fields} }} }}")
    return q, {"key": pick_key(), "period": period(p)}


def listing():
    p = pick_period()
    partner, product = rng.choice(PARTNERS[1:]), rng.choice(PRODUCTS[1:])
    key = rng.choice([f"_T.{partner}.", f"_T..{product}", f"_T.{partner}+{rng.choice(PARTNERS[1:])}."])
    if rng.random() < 0.7:
        flt = {"key": key, "periods": [period(p)]}
    else:
        flt = {"key": key, "periodFrom": period(max(0, p - 5)), "periodTo": period(p)}
    fields = rng.choice(OBS_FIELDS[:3])
    q = (f"query Listing($filter: ObservationFilter, $asOf: AsOf, $first: Int) "
         f"{{ observations(dataset: \"{DATASET}\", filter: $filter, asOf: $asOf, first: $first) "
         f"{{ totalCount nodes {{ {fields} }} pageInfo {{ hasNextPage endCursor }} }} }}")
    return q, {"filter": flt, "asOf": pick_as_of(p), "first": rng.choice([20, 50, 100])}


def summary():
    p = pick_period()
    q = (f"query Summary($filter: ObservationFilter) "
         f"{{ revisionSummary(dataset: \"{DATASET}\", filter: $filter) "
         f"{{ observationCount revisedCount meanRevision meanAbsoluteRevision maxAbsoluteRevision }} }}")
    return q, {"filter": {"key": f"_T.{rng.choice(PARTNERS)}.", "periods": [period(p)]}}


MIX = [(breakdown, 30), (observation, 30), (history, 15), (listing, 20), (summary, 5)]
kinds = [k for k, _ in MIX]
weights = [w for _, w in MIX]
for _ in range(count):
    query, variables = rng.choices(kinds, weights)[0]()
    print(json.dumps({"query": query, "variables": {k: v for k, v in variables.items() if v is not None}},
                     separators=(",", ":")))
