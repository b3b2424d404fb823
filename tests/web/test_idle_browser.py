"""Issue 14, acceptance 1: the idle display tells the truth about listening, in Chromium.

With one of two sensors offline the idle screen does not say "All quiet": large and amber, it
says how many sensors are not listening and names them; with both listening it does say "All
quiet"; a sensor stopped on purpose is named as stopped; a file replay that ended is not
counted. Runs ``tests/web/browser/idle.mjs`` (playwright-core, Debian's chromium).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.messages import TRANSIENT
from schemas.topics import Topics
from services.web.service import WebService
from services.web.settings import WebSettings
from tests.support.screenshots import screenshot_dir
from tests.web.conftest import (
    BROWSER_DIR,
    CHROMIUM,
    NODE,
    SITE,
    TOKEN,
    mqtt_client,
    node_status,
    running,
    skip_without_browser,
    wait_connected,
)

pytestmark = pytest.mark.integration

AMBER = "rgb(255, 213, 74)"  # --warn-bg
GREEN = "rgb(111, 224, 154)"  # --ok


@skip_without_browser
@pytest.mark.timeout(120)
async def test_the_idle_screen_says_all_quiet_only_when_every_sensor_listens(
    mosquitto: Any, topic_root: str, web_settings: WebSettings, tmp_path: Path
) -> None:
    topics = Topics(topic_root)
    web = WebService(web_settings, handle_signals=False)
    env = {**os.environ, "DISPLAY_URL": "", "DISPLAY_TOKEN": TOKEN, "CHROMIUM": CHROMIUM,
           "SCREENSHOT_DIR": str(screenshot_dir(tmp_path))}  # fmt: skip
    async with running(web), mqtt_client(mosquitto, "idle-publisher") as mqtt:
        await wait_connected(web)

        async def publish(node: str, state: str = "online", **kw: Any) -> None:
            status = node_status(node, state=state, **kw)
            await mqtt.publish(topics.status(SITE, node), status.to_json(), qos=1, retain=True)

        await publish("kitchen")
        await publish("garage", "offline", at=datetime.now(UTC) - timedelta(hours=2))
        env["DISPLAY_URL"] = f"http://127.0.0.1:{web.port}/"
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE, str(BROWSER_DIR / "idle.mjs"), cwd=BROWSER_DIR, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None

        async def shows(step: str, **expect: str) -> dict[str, Any]:
            proc.stdin.write(json.dumps({"step": step, "expect": expect}).encode() + b"\n")  # type: ignore[union-attr]
            while True:
                async with asyncio.timeout(40):
                    line = await proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    await proc.wait()
                    err = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
                    pytest.fail(f"browser script ended at '{step}': {err[-3000:]}")
                doc: dict[str, Any] = json.loads(line)
                if doc["step"] != "log":
                    assert doc["step"] == step, doc
                    return doc["pages"]  # type: ignore[no-any-return]

        try:
            async with asyncio.timeout(60):
                assert json.loads(await proc.stdout.readline())["step"] == "ready"
            # One of two sensors offline: no "All quiet"; large, amber, named, with how long.
            deaf = await shows("one-offline", title="1 of 2 sensors not listening",
                               listening="Garage (offline 2 h)")  # fmt: skip
            for page in deaf.values():
                assert "All quiet" not in page["visibleText"]
                assert page["color"] == AMBER, page
            assert deaf["phone"]["fontPx"] >= 28, deaf["phone"]
            # Both listening: "All quiet", in green, with nothing about sensors.
            await publish("garage")
            quiet = await shows("both-listening", title="All quiet", listening="")
            assert all(p["color"] == GREEN for p in quiet.values()), quiet
            # Stopped on purpose: named as stopped.
            await publish("kitchen", "stopped")
            await shows("one-stopped", title="1 of 2 sensors not listening",
                        listening="Kitchen (stopped)")  # fmt: skip
            await publish("kitchen")
            await shows("listening-again", title="All quiet")
            # A file replay is counted while it runs, forgotten once it ended.
            replay = node_status("replay").model_copy(update={"capabilities": [TRANSIENT]})
            await mqtt.publish(topics.status(SITE, "replay"), replay.to_json(), qos=1)
            await shows("replay-running", title="All quiet")
            await asyncio.sleep(0.01)  # the stop is newer than the start
            ended = replay.model_copy(update={"state": "stopped", "at": datetime.now(UTC)})
            await mqtt.publish(topics.status(SITE, "replay"), ended.to_json(), qos=1)
            await shows("replay-ended", title="All quiet")
            await publish("kitchen", "offline")
            await publish("garage", "offline")
            await shows("none-listening", title="No sensor is listening (2 sensors)")
            proc.stdin.close()
            async with asyncio.timeout(20):
                assert await proc.wait() == 0, (await proc.stderr.read()).decode()[-3000:]
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
