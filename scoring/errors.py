"""The one root exception of leadscore, and the errors the core raises."""

from __future__ import annotations


class LeadscoreError(Exception):
    """Root of every error leadscore raises on purpose."""


class RulesError(LeadscoreError):
    """A rules file that cannot be used: every problem, each with its path and reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid rules in {source}:\n{listing}")
