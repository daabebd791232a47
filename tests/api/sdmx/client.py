"""Reads the SDMX endpoint with sdmx1, as a statistician would, and prints what it read as
JSON for the Rust test to compare with GraphQL.

Usage: client.py BASE_URL AS_OF
"""

import json
import sys

import sdmx

base, as_of = sys.argv[1], sys.argv[2]
sdmx.add_source({"id": "TRADELEDGER", "url": base, "name": "tradeledger"}, override=True)
client = sdmx.Client("TRADELEDGER")

# The dataflow with its structure (sdmx1 asks for references=all).
structure = client.dataflow("KR_KNOWLEDGE_SERVICES", agency_id="BOK")
flow = structure.dataflow["KR_KNOWLEDGE_SERVICES"]
dsd = flow.structure
ledger_dims = [d.id for d in dsd.dimensions if d.id not in ("FREQ", "MEASURE", "TIME_PERIOD")]


def figures(message):
    """(ledger key, period, measure, value, OBS_STATUS) of every observation."""
    rows = []
    for ds in message.data:
        for obs in ds.obs:
            key = {k: str(getattr(v.value, "id", v.value)) for k, v in obs.key.values.items()}
            status = obs.attached_attribute.get("OBS_STATUS")
            rows.append(
                [
                    ".".join(key[d] for d in ledger_dims),
                    key["TIME_PERIOD"],
                    key["MEASURE"],
                    str(obs.value),
                    str(getattr(status.value, "id", status.value)) if status is not None else None,
                ]
            )
    return sorted(rows)


out = {
    "dataflow": str(flow.name),
    "maintainer": flow.maintainer.id,
    "dimensions": [d.id for d in dsd.dimensions],
    "attributes": [a.id for a in dsd.attributes],
    "measures": [m.id for m in dsd.measures],
    "codes": {
        cl.id: {c.id: str(c.name) for c in cl} for cl in structure.codelist.values()
    },
    # The whole dataflow (SDMX-ML 2.1 GenericData: no structure given).
    "all": figures(client.data("KR_KNOWLEDGE_SERVICES")),
    # A key built from the structure, with startPeriod (structure-specific data).
    "key": figures(
        client.data(
            "KR_KNOWLEDGE_SERVICES",
            key={"SERVICE_TYPE": ["IPR", "_T"], "INDUSTRY": "_T", "COUNTERPART": "_T"},
            params={"startPeriod": "2025"},
            dsd=dsd,
        )
    ),
    # As of a time; sdmx1 passes a URL's query string as it is (the `+` unencoded).
    "as_of": figures(
        client.get(url=f"{base}/data/KR_KNOWLEDGE_SERVICES/all/all?asOf={as_of}")
    ),
}
json.dump(out, sys.stdout)
