"""The audit store of the CDS Hooks service: invocations, cards, feedback and its report.

store = AuditStore.open(settings.database_url)   # migrates to the newest schema
store.record_invocation(Invocation(...))
store.record_feedback([FeedbackRecord(...)])
print(render_report(store.feedback_report()))
"""

from .records import CardRecord, FeedbackRecord, Invocation, Refusals, RuleRate
from .report import render_report, report_json
from .store import AuditStore

__all__ = [
    "AuditStore",
    "CardRecord",
    "FeedbackRecord",
    "Invocation",
    "Refusals",
    "RuleRate",
    "render_report",
    "report_json",
]
