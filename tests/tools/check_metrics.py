"""Parses a /metrics exposition from standard input with the Prometheus Python client's own
parser for the format named by the argument (`prometheus`: the text format 0.0.4;
`openmetrics`: OpenMetrics 1.0, which is strict and refuses anything out of the standard).

Prints one line per metric family, `name type samples`, and exits 1 naming the problem when
the text does not parse, or a family is untyped (a sample that no `# TYPE` covers) or a counter
whose samples the parser did not take as its own (sample lines named after it, and none in the
family). A labelled family that has seen nothing yet has no sample lines at all, and passes."""

import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as prometheus_families


def main():
    fmt = sys.argv[1]
    text = sys.stdin.read()
    parse = {"prometheus": prometheus_families, "openmetrics": openmetrics_families}[fmt]
    try:
        families = list(parse(text))
    except Exception as e:  # the parsers raise ValueError and others on bad input
        print(f"the {fmt} parser refused the exposition: {e!r}", file=sys.stderr)
        return 1
    problems = []
    sample_names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for f in families:
        if f.type in ("unknown", "untyped"):
            problems.append(f"{f.name}: untyped (samples {[s.name for s in f.samples][:3]})")
        orphans = sorted(n for n in sample_names if n == f.name or n.startswith(f.name + "_"))
        if f.type == "counter" and not f.samples and orphans:
            problems.append(f"{f.name}: a counter family without samples, beside sample lines {orphans[:3]}")
        print(f"{f.name} {f.type} {len(f.samples)}")
    if problems:
        print("; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
