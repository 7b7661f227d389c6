"""The worker's web views."""

from __future__ import annotations

from typing import Any

from streams.app import LeadscoreApp


def register(app: LeadscoreApp) -> None:
    @app.faust.page("/health")
    async def health(web: Any, request: Any) -> Any:
        """200 once topics exist and this worker has its partitions (and state) assigned."""
        first_input = app.settings.input_topics[0]
        body = {
            "status": "ok" if app.ready else "starting",
            "rules_version": app.rules.version,
            "partitions": sorted(
                tp.partition
                for tp in app.faust.assignor.assigned_actives()
                if tp.topic == first_input
            ),
        }
        return web.json(body, status=200 if app.ready else 503)
