"""The flask commands: sync in-process, set-credential from stdin, rotate-keys."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.credentials import reveal
from portal.extensions import db
from portal.models import AiAccountCredential
from portal.timeutil import myt_at, myt_today
from tests.plugin_simulator import HEALTHY


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url}


def test_set_credential_reads_key_from_stdin_and_sync_runs_in_process(runner, app_ctx, factories, sim):
    blogger = factories.make_blogger()
    day = myt_today() - timedelta(days=1)
    factories.make_sale(blogger, myt_at(day, 10))
    db.session.commit()
    result = runner.invoke(args=["aiaccount", "set-credential", "--blogger", str(blogger.id),
                                 "--company", HEALTHY.name], input=f"  {HEALTHY.key}  \n")
    assert result.exit_code == 0, result.output
    assert HEALTHY.key not in result.output and "surrounding whitespace removed" in result.output
    credential = db.session.scalar(select(AiAccountCredential))
    assert reveal(credential) == HEALTHY.key and HEALTHY.key.encode() not in credential.ciphertext

    args = ["aiaccount", "sync", "--blogger", str(blogger.id), "--type", "pos_invoice",
            "--start", day.isoformat(), "--end", day.isoformat(), "--json"]
    dry = runner.invoke(args=args + ["--dry-run"])
    assert json.loads(dry.output)["documents"] == 1 and sim.documents(HEALTHY) == []
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["status"], body["rows"], body["created"], body["skipped"]) == ("succeeded", 1, 1, 0)
    again = json.loads(runner.invoke(args=args).output)
    assert (again["created"], again["skipped"]) == (0, 1)


@pytest.mark.parametrize("extra,message", [
    (["--type", "orders"], "Invalid value for '--type'"),
    (["--type", "pos_invoice", "--start", "2026-13-01"], "Invalid value for '--start'"),
    (["--type", "pos_invoice", "--start", "2026-05-02", "--end", "2026-05-01"], "before the start date"),
])
def test_sync_bad_input_is_a_clear_error(runner, app_ctx, factories, extra, message):
    blogger = factories.make_blogger()
    db.session.commit()
    base = {"--start": "2026-05-01", "--end": "2026-05-01"}
    args = ["aiaccount", "sync", "--blogger", str(blogger.id), *extra]
    for flag, value in base.items():
        if flag not in extra:
            args += [flag, value]
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_sync_unknown_blogger(runner, app_ctx):
    result = runner.invoke(args=["aiaccount", "sync", "--blogger", "999", "--type", "kol_bill",
                                 "--start", "2026-05-01", "--end", "2026-05-01"])
    assert result.exit_code == 1 and "No blogger with id 999" in result.output
