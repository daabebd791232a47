"""Reads SDMX-JSON 1.0 data from the SDMX endpoint with sdmx1's JSON reader and prints what
it read as JSON for the Rust test to compare with GraphQL.

sdmx1 (2.28) reads SDMX-JSON 1.0 in the layout of the standard's samples: `header`,
`structure` and `dataSets` at the top of the message. The standard's field guide and its
normative schema, which the service follows, put them in `meta` and `data`, so `draft`
moves the three members up; sdmx1 also builds a coded attribute value from every member of
its object and refuses `names`, so `draft` drops those. Nothing else is changed.

Usage: client_json10.py BASE_URL AS_OF
"""

import io
import json
import sys
import urllib.request

import sdmx

base, as_of = sys.argv[1], sys.argv[2]
ACCEPT = "application/vnd.sdmx.data+json;version=1.0.0"


def draft(message):
    """The message in the layout sdmx1 reads."""
    structure = message["data"]["structure"]
    for level in structure["attributes"].values():
        for attribute in level:
            for value in attribute["values"]:
                if "id" in value:
                    value.pop("names", None)
    return {"header": message["meta"], "structure": structure, "dataSets": message["data"]["dataSets"]}


def read(query):
    request = urllib.request.Request(f"{base}/data/{query}", headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"].startswith("application/vnd.sdmx.data+json; version=1.0.0")
        message = json.load(response)
    return sdmx.read_sdmx(io.BytesIO(json.dumps(draft(message)).encode()), format="JSON")


def figures(message):
    """(ledger key, period, measure, value, OBS_STATUS, RELEASE_STATUS) of every observation."""
    rows = []
    for ds in message.data:
        for obs in ds.obs:
            key = {k: str(getattr(v.value, "id", v.value)) for k, v in obs.key.values.items()}
            attrs = {k: str(getattr(v.value, "id", v.value)) for k, v in obs.attached_attribute.items()}
            rows.append(
                [
                    ".".join(key[d] for d in ("SERVICE_TYPE", "INDUSTRY", "COUNTERPART")),
                    key["TIME_PERIOD"],
                    key["MEASURE"],
                    str(obs.value),
                    attrs.get("OBS_STATUS"),
                    attrs.get("RELEASE_STATUS"),
                ]
            )
    return sorted(rows)


out = {
    "latest": figures(read("KR_KNOWLEDGE_SERVICES")),
    "flat": figures(read("KR_KNOWLEDGE_SERVICES?dimensionAtObservation=AllDimensions")),
    "as_of": figures(read(f"KR_KNOWLEDGE_SERVICES/all/all?asOf={as_of.replace('+', '%2B')}")),
}
json.dump(out, sys.stdout)
