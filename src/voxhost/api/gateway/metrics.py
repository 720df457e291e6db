"""The gateway's Prometheus series, on the app's registry. Labels are
closed sets (route, served, reason, kind, side, model, language): never a
player id, a key, or anything a client can vary without bound."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from voxhost.ops.metrics import LATENCY_BUCKETS

WER_BUCKETS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)


class GatewayMetrics:
    def __init__(self, registry):
        r = registry
        self.served = Counter("voxhost_gateway_requests", "Requests by where they were served "
                              "(local, upstream, fallback, burst).", ["route", "served"], registry=r)
        self.fallbacks = Counter("voxhost_gateway_fallbacks", "Requests sent upstream because local would fail.",
                                 ["route", "reason"], registry=r)
        self.upstream_errors = Counter("voxhost_gateway_upstream_errors", "Upstream failures by kind "
                                       "(unreachable, timeout, auth, status_4xx, status_429, status_5xx, cut).",
                                       ["route", "kind"], registry=r)
        self.upstream_latency = Histogram("voxhost_gateway_upstream_seconds", "Upstream time to response headers.",
                                          ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_cost = Counter("voxhost_gateway_upstream_cost_usd", "Cloud API price of upstream-served work.",
                                     ["route"], registry=r)
        # the upstream's circuit breaker (gateway/breaker.py)
        self.breaker_state = Gauge("voxhost_gateway_breaker_state", "Upstream circuit breaker: 0 closed, "
                                   "1 half open (probing), 2 open (its players served here).", registry=r)
        self.breaker_transitions = Counter("voxhost_gateway_breaker_transitions", "Breaker state changes, by the "
                                           "state entered.", ["state"], registry=r)
        self.breaker_probes = Counter("voxhost_gateway_breaker_probes", "Probes of an open breaker's upstream "
                                      "(answered, failed).", ["outcome"], registry=r)
        self.failovers = Counter("voxhost_gateway_failovers", "Upstream-routed work served here because the "
                                 "upstream failed (upstream_failed: this request's try; breaker_open: not tried) "
                                 "or refused because this server had no room either (no_room).",
                                 ["route", "reason"], registry=r)
        # shadow comparisons
        self.shadow = Counter("voxhost_shadow_requests", "Shadow comparisons by outcome "
                              "(compared, upstream_error, skipped_busy).", ["route", "outcome"], registry=r)
        self.shadow_wer = Histogram("voxhost_shadow_wer", "WER of the local transcript against the upstream's.",
                                    ["model", "language"], buckets=WER_BUCKETS, registry=r)
        self.shadow_words = Counter("voxhost_shadow_words", "Upstream transcript words compared.",
                                    ["model", "language"], registry=r)
        self.shadow_word_errors = Counter("voxhost_shadow_word_errors", "Word edits between the two transcripts "
                                          "(pooled WER = errors / words).", ["model", "language"], registry=r)
        self.shadow_latency = Histogram("voxhost_shadow_latency_seconds", "Whole-response latency of each side.",
                                        ["route", "side"], buckets=LATENCY_BUCKETS, registry=r)
        self.shadow_cost = Counter("voxhost_shadow_cost_usd", "Cost of the compared requests on each side.",
                                   ["route", "side"], registry=r)
