"""HTTP: Prometheus /metrics, /health and /ready (and later the admin REST API and the web console)."""
