"""Schedules for ``rq cron --url $REDIS_URL portal.cron_jobs`` (one per deployment).

MYT is UTC+8 with no daylight saving, so a UTC hour boundary is a MYT hour boundary.
"""
import os

from rq import cron

from portal.jobs import autopush_tick, reap_stale, send_alert_digest

QUEUE = os.environ.get("RQ_QUEUE", "aiaccount")

cron.register(autopush_tick, QUEUE, cron="0 * * * *", name="aiaccount-autopush-tick")
cron.register(reap_stale, QUEUE, interval=60, name="aiaccount-reap-stale-runs")
cron.register(send_alert_digest, QUEUE, cron="30 * * * *", name="aiaccount-alert-digest")
