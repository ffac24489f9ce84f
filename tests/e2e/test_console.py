"""The web console in a real browser: Debian's chromium driven by Playwright, against a real
edge and agents (tests/e2e/stack.py), over TLS, on the edge's own host names (the browser maps
example.test and every SLUG.example.test to loopback).

One browser and one edge for the module; each test its own browser context (cookies and
storage of its own). Screenshots of every page go to the module's temporary directory
(``console-shots*/``; pytest keeps the last runs' under its basetemp).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from agent.ollama import OllamaBackend
from agent.pairing import pair
from agent.runner import RunOptions, run_agent
from edge.console import CONTENT_SECURITY_POLICY
from edge.console.sessions import COOKIE
from tests.e2e.stack import Agent, Stack, running_stack, user

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; .ci/run installs it
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP example.test 127.0.0.1, MAP *.example.test 127.0.0.1",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no chromium (apt-get install chromium)"),
]


@dataclass
class Site:
    stack: Stack
    browser: Browser
    port: int
    shots: Path
    traffic_key: str

    def url(self, path: str, host: str = "example.test") -> str:
        return f"https://{host}:{self.port}{path}"

    async def context(self) -> BrowserContext:
        return await self.browser.new_context(
            ignore_https_errors=True,  # the stack's CA is not the browser's
            viewport={"width": 1280, "height": 860},
        )

    async def shot(self, page: Page, name: str) -> None:
        await page.screenshot(path=self.shots / f"{name}.png", full_page=True)

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.stack.admin() as http:
            response = await http.request(method, path, json=body)
            response.raise_for_status()
            return response.json()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    tmp = Path(tmp_path_factory.mktemp("console"))
    async with running_stack(tmp) as stack:
        await stack.tenant("acme")
        await stack.tenant("globex")
        traffic = await stack.key("acme", "traffic")
        await stack.agent("acme")
        async with stack.openai(traffic) as client:  # something for the charts and tables
            for model in ("qwen3:8b", "qwen3:8b", "llama3.2:3b"):
                await client.chat.completions.create(model=model, messages=[user("hi")])
            with pytest.raises(Exception):  # noqa: B017  # an error for the charts
                await client.chat.completions.create(model="nope:1b", messages=[user("hi")])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            shots = Path(tmp_path_factory.mktemp("console-shots"))
            try:
                yield Site(stack, browser, stack.edge.port, shots, traffic)
            finally:
                await browser.close()


class Watched:
    """A page whose console errors and uncaught exceptions are collected: a CSP violation or a
    script error shows up there."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


async def sign_in(site: Site, page: Page, secret: str, host: str = "example.test") -> None:
    await page.goto(site.url("/console/", host))
    await page.fill("#admin-key", secret)
    await page.click("form.signin-form button[type=submit]")
    await page.wait_for_selector(".topbar")


async def test_every_page_as_the_operator(site: Site) -> None:
    context = await site.context()
    watched = Watched(await context.new_page())
    page = watched.page
    response = await page.goto(site.url("/console/"))
    assert response is not None and response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    await page.wait_for_selector("#admin-key")
    await site.shot(page, "01-sign-in")
    await sign_in(site, page, site.stack.admin_key)

    pages = [
        ("/console/", ".chart-card .legend", "02-overview"),
        ("/console/tenants/acme", "#api-base", "03-tenant"),
        (
            "/console/tenants/acme/machines",
            "#machines tr[data-machine='gpu-1'] .dot-on",
            "04-machines",
        ),
        ("/console/tenants/acme/keys", "#keys tr[data-key='traffic']", "05-keys"),
        ("/console/tenants/acme/usage", "#usage-by-model tbody tr", "06-usage"),
        ("/console/tenants/acme/audit", "#audit tbody tr.event-request", "07-audit"),
    ]
    for path, ready, name in pages:
        response = await page.goto(site.url(path))
        assert response is not None and response.status == 200
        await page.wait_for_selector(ready)
        await site.shot(page, name)
    await page.goto(site.url("/console/tenants/acme"))
    assert (
        await page.text_content("#api-base")
        == site.stack.edge.context.config.tenant_url("acme") + "/v1"
    )

    # The session is a cookie no script can read; nothing else is kept in the browser.
    cookies = {c["name"]: c for c in await context.cookies()}
    cookie = cookies[COOKIE]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert await page.evaluate("document.cookie") == ""
    stored = await page.evaluate("[localStorage.length, sessionStorage.length]")
    assert stored == [0, 0]
    assert site.stack.admin_key not in await page.content()
    assert watched.errors == []
    await context.close()


async def test_a_script_cannot_write_html_or_run_inline(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    await page.goto(site.url("/console/"))
    await page.wait_for_selector("#admin-key")
    outcome = await page.evaluate(
        """() => {
            try { document.body.innerHTML = '<img src=x onerror=alert(1)>'; return 'written'; }
            catch (e) { return e.name; }
        }"""
    )
    assert outcome == "TypeError"  # Trusted Types: no string reaches an HTML sink
    await context.close()


async def test_a_key_is_shown_once_and_refused_once_revoked(site: Site) -> None:
    context = await site.context()
    watched = Watched(await context.new_page())
    page = watched.page
    await sign_in(site, page, site.stack.admin_key)
    await page.goto(site.url("/console/tenants/acme/keys"))
    await page.fill("#create-key input[name=name]", "browser")
    await page.fill("#create-key input[name=rpm]", "60")
    await page.click("#create-key button[type=submit]")
    secret = (await page.text_content("#secret-value", timeout=5000)) or ""
    assert secret.startswith("sk-lt-")
    await page.wait_for_selector("#keys tr[data-key='browser']")
    await site.shot(page, "08-key-created")
    async with httpx.AsyncClient(verify=site.stack.tls()) as http:
        models = site.stack.edge_url + "/v1/models"
        bearer = {"Authorization": f"Bearer {secret}"}
        assert (await http.get(models, headers=bearer)).status_code == 200

        await page.reload()
        await page.wait_for_selector("#keys tr[data-key='browser']")
        assert await page.query_selector("#secret-value") is None
        assert secret not in await page.content()  # the prefix only, never again the secret
        row = await page.text_content("#keys tr[data-key='browser']") or ""
        assert secret[:12] in row and "60 rpm" in row

        await page.click("#keys tr[data-key='browser'] button.danger")
        await page.click("dialog button[value=ok]")
        await page.wait_for_selector("#keys tr[data-key='browser']", state="detached")
        assert (await http.get(models, headers=bearer)).status_code == 401
    assert watched.errors == []
    await context.close()


async def test_pairing_a_machine_from_the_console_brings_it_online(site: Site) -> None:
    context = await site.context()
    watched = Watched(await context.new_page())
    page = watched.page
    await sign_in(site, page, site.stack.admin_key)
    await page.goto(site.url("/console/tenants/acme/machines"))
    await page.fill("#pairing ~ * input[name=name], form.inline-form input[name=name]", "gpu-2")
    await page.click("form.inline-form button[type=submit]")
    code = (await page.text_content("#pairing-code", timeout=5000)) or ""
    command = (await page.text_content("#pairing pre code")) or ""
    assert command.startswith(f"llmtunnel agent pair {code} --edge https://acme.example.test")
    await site.shot(page, "09-pairing")
    stack = site.stack
    config = await pair(code, stack.edge_url, stack.ca)  # the agent, with the code shown
    stop = asyncio.Event()
    backend = OllamaBackend(stack.ollama_url, 4)
    task = asyncio.create_task(run_agent(config, backend, RunOptions(), stop))
    stack.agents.append(Agent(config, task, stop, backend))
    await page.wait_for_selector("#pairing-status.done", timeout=10_000)
    await page.wait_for_selector("#machines tr[data-machine='gpu-2'] .dot-on")
    await site.shot(page, "10-paired")
    assert watched.errors == []
    await context.close()


async def test_a_tenant_admin_cannot_reach_another_tenant(site: Site) -> None:
    secret = (await site.admin("POST", "/tenants/acme/admin-keys", {"name": "alice"}))["secret"]
    context = await site.context()
    page = await context.new_page()
    await sign_in(site, page, secret, host="acme.example.test")  # on its tenant's own host
    assert "alice · acme" in (await page.text_content(".who-name") or "")
    await page.goto(site.url("/console/tenants/acme/keys", "acme.example.test"))
    await page.wait_for_selector("#keys tr[data-key='traffic']")
    response = await page.goto(site.url("/console/tenants/globex/keys", "acme.example.test"))
    assert response is not None and response.status == 403
    await page.wait_for_selector(".forbidden")
    assert "Forbidden" in (await page.text_content(".forbidden h1") or "")
    await site.shot(page, "11-forbidden")
    status = await page.evaluate(
        "fetch('/console/api/v1/tenants/globex/keys').then((r) => r.status)"
    )
    assert status == 403
    overview = await page.goto(site.url("/console/", "acme.example.test"))
    assert overview is not None
    await page.wait_for_selector(".stat-value")
    assert "globex" not in await page.content()
    await context.close()

    elsewhere = await site.context()  # nor does its key sign in on another tenant's host
    page = await elsewhere.new_page()
    await page.goto(site.url("/console/", "globex.example.test"))
    await page.fill("#admin-key", secret)
    await page.click("form.signin-form button[type=submit]")
    await page.wait_for_selector(".notice-error")
    assert await elsewhere.cookies() == []
    await elsewhere.close()


async def test_signing_out_ends_the_session(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    await sign_in(site, page, site.stack.admin_key)
    cookie = next(c for c in await context.cookies() if c["name"] == COOKIE)
    await page.click("#sign-out")
    await page.wait_for_selector("#admin-key")
    assert [c for c in await context.cookies() if c["name"] == COOKIE] == []
    async with httpx.AsyncClient(verify=site.stack.tls()) as http:  # the old cookie, replayed
        response = await http.get(
            site.stack.edge_url + "/console/api/v1/tenants",
            headers={"Cookie": f"{COOKIE}={cookie['value']}"},
        )
    assert response.status_code == 401
    await page.reload()
    await page.wait_for_selector("#admin-key")  # still signed out after a reload
    await context.close()


async def test_a_change_without_the_csrf_token_or_from_another_origin_is_refused(
    site: Site,
) -> None:
    context = await site.context()
    page = await context.new_page()
    await sign_in(site, page, site.stack.admin_key)
    post = """async ([token]) => {
        const headers = {'Content-Type': 'application/json'};
        if (token !== null) headers['X-CSRF-Token'] = token;
        const r = await fetch('/console/api/v1/tenants', {method: 'POST', headers,
                              body: JSON.stringify({slug: 'csrf'})});
        return [r.status, (await r.json()).error?.code ?? null];
    }"""
    assert await page.evaluate(post, [None]) == [403, "csrf_token_invalid"]
    assert await page.evaluate(post, ["0" * 64]) == [403, "csrf_token_invalid"]
    # A page of a tenant's host is same-site: the Strict cookie goes with its requests to the
    # operator's console, which the Origin check (and the missing token) refuses. (Not a console
    # page: the console's own CSP would not even let it send the request.)
    other = await context.new_page()
    await other.goto(site.url("/healthz", "globex.example.test"))
    target = site.url("/console/api/v1/tenants")
    async with other.expect_event("requestfailed") as failed:
        await other.evaluate(
            """(url) => fetch(url, {method: 'POST', mode: 'no-cors', credentials: 'include',
                   headers: {'Content-Type': 'text/plain'}, body: '{"slug": "csrf"}'})
                 .catch(() => 'blocked')""",  # its CORP header keeps the answer from the page
            target,
        )
    sent = await failed.value
    assert sent.url == target
    assert "ERR_BLOCKED_BY_RESPONSE" in (sent.failure or "")  # the edge answered (and refused)
    tenants = [t["slug"] for t in (await site.admin("GET", "/tenants"))["tenants"]]
    assert "csrf" not in tenants
    await context.close()
