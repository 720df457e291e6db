"""Migration gateway: serve a share of players here, the rest through an
OpenAI-compatible cloud API; fall back and burst to it; shadow-compare both.

config (settings -> validated GatewayConfig, live shares file), policy (who
goes where), upstream (the HTTP client), proxy (the ASGI middleware that
applies it), shadow (off-path comparisons), report (`voxhost migrate report`).
"""
