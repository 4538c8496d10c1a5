"""The web console in a real headless Chromium (Playwright on the system browser): an incident
appears live, "restart it" + Approve really restarts demo-shop and says it was verified healthy,
the chaos toggle makes the next diagnoses come from the layers below the LLM, API errors read
as words, and off loopback the page asks for the console token before anything else."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.app import demo
from bot.app.config import Config, ProviderConfig
from bot.app.passwords import hash_password
from tests.fakes.bot_server import RunningBot, free_port, run_bot
from tests.fakes.openai_server import FakeOpenAI, reply

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 15_000
RESTART_TIMEOUT_MS = 45_000  # the restart command, its health wait, then the bot's verification

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium executable (Debian: apt-get install chromium)"
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@asynccontextmanager
async def console(browser: Browser, bot: RunningBot, screenshot: Path) -> AsyncIterator[Page]:
    """The console open in a new tab. The tab is closed before the bot stops (the server waits
    for open event streams); on failure it is saved as a screenshot first."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{bot.url}/")
        yield page
        assert not errors, f"uncaught errors in the console page: {errors}"
    except BaseException:
        await page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot of the console: {screenshot}")
        raise
    finally:
        await page.close()


async def live(page: Page) -> None:
    """Wait until the page's event stream is connected; mark the document to detect reloads."""
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=UI_TIMEOUT_MS
    )
    await page.evaluate("window.sameDocument = true")


async def still_same_document(page: Page) -> bool:
    return await page.evaluate("window.sameDocument === true")


async def say(page: Page, text: str) -> None:
    await page.get_by_test_id("reply-input").fill(text)
    await page.get_by_test_id("reply-send").click()


@pytest.fixture
async def shop_dir(tmp_path: Path) -> AsyncIterator[Path]:
    """demo-shop run the way `opsbot demo` runs it, so its restart action is the real one."""
    directory = tmp_path / "demo"
    directory.mkdir()
    port = free_port()
    await asyncio.to_thread(demo.start_service, directory, port)
    try:
        assert await asyncio.to_thread(demo.wait_healthy, f"http://127.0.0.1:{port}/health")
        yield directory
    finally:
        await asyncio.to_thread(demo.stop_service, directory)


def shop_state(directory: Path) -> dict[str, int]:
    return json.loads((directory / demo.STATE_FILE).read_text())


async def test_an_alert_to_a_verified_restart_in_the_browser(
    browser: Browser, shop_dir: Path, tmp_path: Path
) -> None:
    shop = shop_state(shop_dir)
    shop_url = f"http://127.0.0.1:{shop['port']}"
    cfg = demo.demo_config(shop_dir, 0, shop["port"])
    async with (
        run_bot(cfg, background_worker=True) as bot,
        console(browser, bot, tmp_path / "console.png") as page,
    ):
        await live(page)
        await expect(page.locator("#list-empty")).to_be_visible()

        await demo.fire_first_alert(bot.url, shop_url)  # leak on, health fails, Alertmanager POST
        row = page.get_by_test_id("incident-row")
        await expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(row.get_by_test_id("row-title")).to_have_text(
            "DemoShopUnhealthy: demo-shop health check failing"
        )
        await expect(row).to_have_attribute("data-status", "triggered")
        assert await still_same_document(page), "the incident must arrive without a reload"

        await row.click()
        incident_id = await row.get_attribute("data-id")
        await expect(page).to_have_url(re.compile(rf"#/incidents/{incident_id}$"))
        await expect(page.get_by_test_id("incident-title")).to_have_text(
            "DemoShopUnhealthy: demo-shop health check failing"
        )
        source = page.get_by_test_id("diagnosis-source")
        await expect(source).to_have_text("offline", timeout=UI_TIMEOUT_MS)
        await expect(page.locator(".diagnosis .evidence")).to_contain_text("MemoryError")

        await say(page, "restart it")
        operator = page.locator('[data-testid="message"][data-kind="operator"]')
        await expect(operator.filter(has_text="restart it")).to_have_count(1)
        approve = page.locator('[data-action-id^="approve:"]')
        await expect(approve).to_be_visible(timeout=UI_TIMEOUT_MS)
        await approve.click()

        action_messages = page.locator('[data-testid="message"][data-kind="action"]')
        verified = action_messages.filter(has_text="verified healthy")
        await expect(verified).to_be_visible(timeout=RESTART_TIMEOUT_MS)
        await expect(page.get_by_test_id("status-pill")).to_have_text("resolved")
        await expect(row).to_have_attribute("data-status", "resolved")
        assert shop_state(shop_dir)["pid"] != shop["pid"], "demo-shop was not restarted"
        assert await still_same_document(page)


LIVE_DIAGNOSIS = reply(
    {
        "summary": "checkout is out of heap memory",
        "root_cause": "The heap fills until the JVM throws OutOfMemoryError.",
        "category": "memory_leak",
        "evidence": [{"tool": "alert", "quote": "java.lang.OutOfMemoryError: Java heap space"}],
        "checks": ["heap dump"],
        "mitigation": "restart, then bound the cache",
        "proposed_action": {"action": "none"},
        "confidence": 0.8,
    }
)


async def post_alert(bot: RunningBot, alert_type: str) -> str:
    body = {
        "incident_id": f"{alert_type}-{uuid.uuid4().hex[:6]}",
        "service": "checkout",
        "alert_type": alert_type,
        "severity": "critical",
        "message": f"checkout {alert_type}",
        "logs": [
            "ERROR [main] c.e.checkout.Cart: request failed",
            "java.lang.OutOfMemoryError: Java heap space",
        ],
    }
    resp = await bot.client.post("/webhooks/generic", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def test_the_chaos_toggle_takes_the_llm_away(
    browser: Browser,
    bot_config: Callable[..., Config],
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    fake_openai.default = LIVE_DIAGNOSIS
    cfg = bot_config()
    cfg.llm.providers = [
        ProviderConfig(
            name="primary", base_url=fake_openai.base_url, api_key="sk-test", timeout_s=5
        )
    ]
    async with (
        run_bot(cfg, background_worker=True) as bot,
        console(browser, bot, tmp_path / "console.png") as page,
    ):
        await live(page)
        first = await post_alert(bot, "HeapHigh")
        await page.get_by_test_id("incident-row").filter(has_text="HeapHigh").click()
        await expect(page).to_have_url(re.compile(rf"#/incidents/{first}$"))
        sources = page.get_by_test_id("diagnosis-source")
        await expect(sources).to_have_text(["live"], timeout=UI_TIMEOUT_MS)

        toggle = page.get_by_test_id("chaos-toggle")
        await expect(toggle).not_to_be_checked()
        await page.locator("label", has=toggle).click()  # the switch's track, as people click it
        await expect(toggle).to_be_checked()
        await expect(page.locator("#chaos-banner")).to_be_visible()
        assert (await bot.client.get("/admin/chaos")).json() == {"enabled": True}
        asked = len(fake_openai.requests)

        # The LLM fails, so the same alert's last live diagnosis answers, with its age.
        await say(page, "diagnose again")
        await expect(sources).to_have_text(["live", "cache"], timeout=UI_TIMEOUT_MS)
        await expect(page.locator(".diagnosis.source-cache")).to_contain_text("cached")

        # A new alert has nothing cached: the rule-based engine answers.
        second = await post_alert(bot, "HeapExhausted")
        await page.get_by_test_id("incident-row").filter(has_text="HeapExhausted").click()
        await expect(page).to_have_url(re.compile(rf"#/incidents/{second}$"))
        await expect(sources).to_have_text(["offline"], timeout=UI_TIMEOUT_MS)
        assert len(fake_openai.requests) == asked, "chaos must fail LLM calls before the network"

        await page.reload()
        await expect(page.get_by_test_id("chaos-toggle")).to_be_checked()


async def test_an_api_error_is_shown_in_words(
    browser: Browser, bot_config: Callable[..., Config], tmp_path: Path
) -> None:
    async with (
        run_bot(bot_config()) as bot,
        console(browser, bot, tmp_path / "console.png") as page,
    ):
        await page.goto(f"{bot.url}/#/incidents/no-such-incident")
        await expect(page.locator(".toast")).to_have_text("404: no incident no-such-incident")
        await expect(page).to_have_url(re.compile(r"#/$"))


async def test_off_loopback_the_console_asks_for_its_token(
    browser: Browser, bot_config: Callable[..., Config], tmp_path: Path
) -> None:
    cfg = bot_config(http={"host": "0.0.0.0"}, console={"token": "console-token-0001"})
    async with (
        run_bot(cfg, background_worker=True) as bot,
        console(browser, bot, tmp_path / "console.png") as page,
    ):
        dialog = page.locator("#login-dialog")
        await expect(dialog).to_be_visible()
        await page.locator("#login-token").fill("not-the-token")
        await page.locator("#login-token").press("Enter")
        await expect(page.locator("#login-error")).to_have_text("That token was not accepted.")
        await page.locator("#login-token").fill("console-token-0001")
        await page.locator("#login-token").press("Enter")
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#list-empty")).to_be_visible()
        await live(page)  # the event stream refused before the login reconnects by itself

        incident_id = await post_alert(bot, "HeapHigh")
        await page.get_by_test_id("incident-row").click()
        await expect(page).to_have_url(re.compile(rf"#/incidents/{incident_id}$"))
        await say(page, "ack")  # a POST: the page sends the CSRF token it was given
        await expect(page.get_by_test_id("status-pill")).to_have_text(
            "acknowledged", timeout=UI_TIMEOUT_MS
        )


async def test_a_person_signs_in_by_name_and_speaks_as_themselves(
    browser: Browser, bot_config: Callable[..., Config], tmp_path: Path
) -> None:
    people = [
        {
            "name": "Ravi Kumar",
            "aliases": ["ravi"],
            "roles": ["responder"],
            "console": {"password_hash": hash_password("ravi's passphrase")},
        }
    ]
    cfg = bot_config(http={"host": "0.0.0.0"}, people=people)
    async with (
        run_bot(cfg, background_worker=True) as bot,
        console(browser, bot, tmp_path / "console.png") as page,
    ):
        await expect(page.locator("#login-dialog")).to_be_visible()
        await page.locator("#login-user").fill("ravi")
        await page.locator("#login-token").fill("a guess")
        await page.locator("#login-token").press("Enter")
        await expect(page.locator("#login-error")).to_have_text(
            "That name and password were not accepted."
        )
        await page.locator("#login-token").fill("ravi's passphrase")
        await page.locator("#login-token").press("Enter")
        await expect(page.locator("#login-dialog")).to_be_hidden()
        await live(page)

        await post_alert(bot, "HeapHigh")
        await page.get_by_test_id("incident-row").click()
        await say(page, "ack")
        await expect(page.locator(".message.person .author")).to_have_text(
            "Ravi Kumar", timeout=UI_TIMEOUT_MS
        )
        await expect(page.get_by_test_id("status-pill")).to_have_text(
            "acknowledged", timeout=UI_TIMEOUT_MS
        )
