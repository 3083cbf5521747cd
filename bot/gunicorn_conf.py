"""gunicorn settings for the Procfile: on SIGTERM (a deploy, a scale-down) the worker's runtime
drains — loops finish what they hold, the outbox is flushed, the database lock is released so the
next process takes over at once — instead of dying like kill -9."""


def worker_exit(server, worker):
    import sys

    wsgi = sys.modules.get("bot.wsgi")
    if wsgi is not None:
        runtime = wsgi.app.extensions["kokoro"]
        was = runtime.role
        runtime.shutdown()
        server.log.info("kokoro runtime stopped (was %s): loops drained, outbox flushed, lock released", was)
