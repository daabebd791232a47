# Varnish in front of tradeledger: caches GraphQL GET answers as the server's headers say,
# and lets tradeledger purge them by surrogate key when a release is recorded.
#
#   tradeledger serve --purge-url http://127.0.0.1:6081/ ...
#   varnishd -a :6081 -f /etc/varnish/tradeledger.vcl -s malloc,256m
#
# Needs the xkey vmod (Debian: varnish-modules). Pinned answers (asOf a past point) are
# `immutable` for a year; head answers live `--cache-max-age` seconds, then are served stale
# for `--cache-stale-while-revalidate` seconds while Varnish fetches the new one in the
# background (Varnish's grace); errors and mutations are `no-store`. A PURGE with
# `xkey-purge: tl:ds:<dataset> tl:ledger` drops the head answers of that dataset at once.
vcl 4.1;

import xkey;

backend tradeledger {
    .host = "127.0.0.1";
    .port = "8000";
}

# Who may purge: the tradeledger nodes.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-purge) {
            set req.http.x-purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged " + req.http.x-purged));
        }
        return (purge);
    }
    # Everything else follows Varnish's built-in rules: only GET and HEAD are cached, and a
    # request with `Authorization` (a write token, or reads that need one) goes to the server.
}

sub vcl_backend_response {
    # Keep answers with an ETag a little past their life, so that Varnish revalidates them
    # with If-None-Match (a 304 costs the server no query) instead of fetching them again.
    if (beresp.http.ETag) {
        set beresp.keep = 5m;
    }
}

sub vcl_deliver {
    # The surrogate keys are for caches; clients need not see them.
    unset resp.http.xkey;
}
