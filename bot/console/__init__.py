"""The counselor console: human counselors see live sessions, take one over, reply and hand it
back (issue 34; docs/console.md). A blueprint under /console in the bot's own app: the same process
and database as the webhook, so a take-over and the generation thread see one truth, with no second
server to deploy or secure."""

from .views import make_blueprint

__all__ = ["make_blueprint"]
