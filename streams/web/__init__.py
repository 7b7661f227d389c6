"""The worker's web server: the JSON API, /metrics and the dashboard."""
