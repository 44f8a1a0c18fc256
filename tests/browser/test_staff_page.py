"""The store-staff page in a real browser: Playwright driving Debian's chromium against gunicorn.

No browser download: Playwright's protocol driver launches the system chromium
(`apt-get install chromium`, see the Makefile). Screenshots of every state, at both tablet sizes,
go to test-artifacts/staff/; with NBA_UPDATE_DOCS_SCREENSHOT=1 the landscape offers view is also
written to docs/staff-page.png for the README.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from decisioning.decision import DecisionContext
from decisioning.experiment import holdout_of
from decisioning.reasons import OFFER
from decisioning.snapshot import StateSnapshot
from features import io
from service.live import LiveState
from service.settings import ServiceSettings
from state import open_store
from state.rows import snapshot_of, stock_rows
from tests.integration.servers import call, gunicorn

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("NBA_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "staff"
DOCS_SCREENSHOT = ROOT / "docs" / "staff-page.png"
STORE = "store_002"
LANDSCAPE: ViewportSize = {"width": 1024, "height": 768}
PORTRAIT: ViewportSize = {"width": 768, "height": 1024}
STAFF_KEY = "browser-test-staff-key-01"
#: states the page settles in after a lookup (main[data-state])
SETTLED = re.compile(r"^(offers|holdout|no-offers|unknown|not-ready|error|auth|done)$")

expect.set_options(timeout=15_000)


def card_of(customer_id: str) -> str:
    """The loyalty card number the test data gives a customer."""
    return f"6001{int(customer_id[1:]):08d}"


@dataclass(frozen=True)
class People:
    """Customers that end in each state of the page, for a fresh state store."""

    #: offers in STORE including a waiting list or pre-order (the richest cards)
    rich: list[str]
    #: two or more offers in STORE
    plain: list[str]
    holdout: str
    not_contactable: str
    #: contactable, not held out, and nothing worth offering in STORE
    nothing: str


# ---------------------------------------------------------------- servers and data


@pytest.fixture(scope="module")
def data_dir(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data with a loyalty_card column, so the page offers card lookup."""
    out = tmp_path_factory.mktemp("staff-data")
    customers = io.read_customers(trained.data_dir / io.CUSTOMERS)
    customers["loyalty_card"] = [card_of(c) for c in customers["customer_id"]]
    io.write_parquet(customers, out / io.CUSTOMERS)
    for name in (io.INVENTORY, io.OFFERS):
        shutil.copy(trained.data_dir / name, out / name)
    return out


def _stocked_state(url: str, data_dir: Path) -> None:
    """Load the demo inventory into the state store at `url` (as `nba inventory load` does)."""
    store = open_store(url)
    try:
        store.replace_inventory(stock_rows(io.read_inventory(data_dir / io.INVENTORY)),
                                now=datetime.now(UTC))
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(trained, data_dir, tmp_path_factory) -> Iterator[str]:
    """Real gunicorn in development mode (no key) with the default 5 % holdout, no exploration."""
    folder = tmp_path_factory.mktemp("staff-server")
    state_url = f"sqlite:///{folder / 'state.db'}"
    _stocked_state(state_url, data_dir)
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(data_dir), "NBA_STATE_URL": state_url,
                        "NBA_DEV_MODE": "1", "NBA_EXPLORATION": "0", "NBA_POLL_SECONDS": "0",
                        "NBA_ACCESS_LOG": ""}
    env.pop("NBA_HOLDOUT_SHARE", None)
    with gunicorn(env, folder / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def store_server(trained, data_dir, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """Real gunicorn deciding from profiles in the state store (NBA_CUSTOMERS_FROM=store), where
    the page can register a walk-in's card; its base URL and state store URL."""
    from features.customers import profile_documents

    folder = tmp_path_factory.mktemp("staff-store-server")
    state_url = f"sqlite:///{folder / 'state.db'}"
    _stocked_state(state_url, data_dir)
    with open_store(state_url) as store:
        store.profiles.replace(profile_documents(io.read_customers(data_dir / io.CUSTOMERS)),
                               now=datetime.now(UTC))
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(data_dir), "NBA_STATE_URL": state_url,
                        "NBA_CUSTOMERS_FROM": "store", "NBA_DEV_MODE": "1",
                        "NBA_EXPLORATION": "0", "NBA_POLL_SECONDS": "0", "NBA_ACCESS_LOG": ""}
    with gunicorn(env, folder / "server.log", workers=1) as base:
        yield base, state_url


@pytest.fixture(scope="module")
def unready_server(tmp_path_factory) -> Iterator[str]:
    """Real gunicorn over an empty registry (readyz 503), with keys: not in development mode."""
    folder = tmp_path_factory.mktemp("staff-unready")
    state_url = f"sqlite:///{folder / 'state.db'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
                        "NBA_DATA_DIR": str(folder), "NBA_STATE_URL": state_url,
                        "NBA_DEV_MODE": "0", "NBA_API_KEYS": f"staff:{STAFF_KEY}",
                        "NBA_POLL_SECONDS": "0", "NBA_RETRY_SECONDS": "3600",
                        "NBA_ACCESS_LOG": ""}
    # /readyz stays 503 here: wait for the process to answer at all
    with gunicorn(env, folder / "server.log", workers=1, wait_for="/healthz") as base:
        assert call(f"{base}/readyz")[0] == 503
        yield base


@pytest.fixture(scope="module")
def people(loaded, data_dir, tmp_path_factory) -> People:
    """Pick customers by deciding offline exactly as the fresh server will (same floors, stock)."""
    table, policy = loaded.customers, loaded.policy
    settings = ServiceSettings()  # the server runs with the default holdout
    held = holdout_of(table.ids, settings.holdout_share, settings.experiment_salt)
    stock = snapshot_of(io.read_inventory(data_dir / io.INVENTORY))
    now = datetime.now(UTC)
    scratch = open_store(f"sqlite:///{tmp_path_factory.mktemp('scratch') / 'state.db'}")
    try:
        launches = LiveState(scratch).read(policy.catalog, loaded.launch_values, "nobody",
                                           "store", now).launches
    finally:
        scratch.close()
    context = DecisionContext(channel="store", now=now, limit=3, store_id=STORE)
    rich: list[str] = []
    plain: list[str] = []
    nothing: list[str] = []
    for row in range(len(table)):
        if held[row] or not table.contactable[row]:
            continue
        offers = policy.decide_row(table, row, context, StateSnapshot(stock, launches),
                                   settings.decision_settings()).offers
        if len(offers) >= 2:
            fallback = any(o.action != OFFER for o in offers)
            (rich if fallback else plain).append(table.ids[row])
        elif not offers:
            nothing.append(table.ids[row])
        if len(rich) >= 2 and len(plain) >= 2 and nothing:
            break
    assert len(rich) >= 2 and len(plain) >= 2 and nothing, (rich, plain, nothing)
    holdout = next(table.ids[r] for r in range(len(table)) if held[r] and table.contactable[r])
    silent = next(table.ids[r] for r in range(len(table))
                  if not held[r] and not table.contactable[r])
    return People(rich, plain, holdout, silent, nothing[0])


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium under Playwright (no `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: `sudo apt-get install -y chromium` (see the "
                    "Makefile's browser target) or set NBA_CHROMIUM", pytrace=False)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@contextmanager
def open_page(browser: Browser, base: str, viewport: ViewportSize, query: str = ""
              ) -> Iterator[Page]:
    """A fresh touch-screen tab on the staff page; fails the test on any script error or
    anything its Content-Security-Policy blocks."""
    context = browser.new_context(viewport=viewport, has_touch=True, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # the page's Content-Security-Policy must not block anything the page itself needs
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    response = page.goto(f"{base}/staff{query}")
    assert response is not None and "frame-ancestors 'none'" in response.headers[
        "content-security-policy"]
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


@pytest.fixture
def landscape(browser, server) -> Iterator[Page]:
    with open_page(browser, server, LANDSCAPE, f"?store_id={STORE}") as page:
        yield page


def shoot(page: Page, name: str) -> Path:
    """Save a screenshot of the whole page as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def lookup(page: Page, ref: str) -> str:
    """Look a customer up and wait for the page to settle; returns the state it settled in."""
    page.locator("#customer-ref").fill(ref)
    page.get_by_role("button", name="Look up").click()
    app = page.locator("#app")
    expect(app).to_have_attribute("data-state", SETTLED)
    return app.get_attribute("data-state") or ""


def walk_in(page: Page) -> str:
    """Decide for a walk-in and wait for the page to settle; returns the state it settled in.

    A walk-in gets the holdout like anyone (the hash of its random session id: 5% here), so a
    held-out one is checked and the walk-in started again (five in a row: p = 3e-7).
    """
    app = page.locator("#app")
    for _ in range(5):
        page.get_by_role("button", name="Walk-in, no account").click()
        expect(page.locator("#c-id")).to_have_text("Walk-in, no account")
        expect(app).to_have_attribute("data-state", SETTLED)
        state = app.get_attribute("data-state") or ""
        if state != "holdout":
            return state
        expect(page.locator("#message")).to_contain_text("holdout")
    return state


# ---------------------------------------------------------------- tests


def test_lookup_by_card_shows_offers_and_accept_is_recorded(landscape, server, people):
    page = landscape
    customer_id = people.rich[0]
    assert lookup(page, card_of(customer_id)) == "offers"
    expect(page.locator("#c-id")).to_have_text(customer_id)
    expect(page.locator("#c-card")).to_have_text(card_of(customer_id))
    expect(page.locator("#c-value")).to_contain_text("value")
    cards = page.locator("#offers .offer")
    assert cards.count() >= 2
    first = cards.first
    expect(first.locator(".sentence")).not_to_be_empty()
    expect(first.locator(".sentence")).not_to_contain_text(STORE)  # "in this store"
    fallback = page.locator('#offers .offer[data-action="waitlist"], '
                            '#offers .offer[data-action="preorder"]').first
    expect(fallback.locator(".sentence")).to_contain_text(" — offer ")
    expect(page.locator("#offers .stock-summary").first).to_contain_text("this store")
    shoot(page, "offers-landscape")

    decision_id = page.locator("#offers").get_attribute("data-decision-id")
    offer_id = first.get_attribute("data-offer-id")
    first.get_by_role("button", name="Accept").click()
    expect(page.locator("#recorded-list li").first).to_contain_text("Accepted")
    expect(page.locator("#recorded-list li").first).to_contain_text("recorded")
    # the offers are decided again once the outcome is recorded
    expect(page.locator("#offers")).to_have_attribute(
        "data-decision-id", re.compile(rf"^(?!{decision_id}$)[0-9a-f]{{32}}$"))
    assert page.locator("#app").get_attribute("data-state") in ("offers", "no-offers")
    again = page.locator(f'#offers .offer[data-offer-id="{offer_id}"]')
    if again.count():  # decided again, the model may rank it first again: say it was taken
        expect(again.locator(".card-status")).to_have_text("Accepted earlier this visit")
        expect(again.get_by_role("button", name="Accept")).to_be_disabled()
    shoot(page, "accepted-landscape")
    # recorded on the server: the same outcome again is a no-op (idempotent)
    status, body = call(f"{server}/v1/outcomes", {"decision_id": decision_id,
                                                  "offer_id": offer_id, "event": "accepted"})
    assert status == 200 and body["recorded"] is False


def test_decline_and_not_now_close_their_cards(landscape, server, people):
    page = landscape
    assert lookup(page, people.plain[0]) == "offers"
    decision_id = page.locator("#offers").get_attribute("data-decision-id")
    cards = page.locator("#offers .offer")
    before = cards.count()
    declined = cards.first.get_attribute("data-offer-id")
    cards.first.get_by_role("button", name="Decline").click()
    expect(page.locator("#recorded-list li").first).to_contain_text("Declined")
    expect(cards).to_have_count(before - 1)
    cards.first.get_by_role("button", name="Not now").click()
    expect(page.locator("#recorded-list li").first).to_contain_text("Not now")
    expect(cards).to_have_count(before - 2)
    status, body = call(f"{server}/v1/outcomes", {"decision_id": decision_id,
                                                  "offer_id": declined, "event": "declined"})
    assert status == 200 and body["recorded"] is False


@pytest.mark.parametrize("viewport", [LANDSCAPE, PORTRAIT],
                         ids=["landscape-1024x768", "portrait-768x1024"])
def test_tablet_sizes_have_large_targets_and_no_sideways_scroll(browser, server, people,
                                                                 viewport):
    landscape = viewport == LANDSCAPE
    customer_id = people.rich[1] if landscape else people.plain[1]
    with open_page(browser, server, viewport, f"?store_id={STORE}") as page:
        assert lookup(page, customer_id) == "offers"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], "the page scrolls sideways"
        controls = page.locator("button:visible, input:visible, select:visible, summary:visible")
        assert controls.count() >= 3 + 3 * page.locator("#offers .offer").count()
        for i in range(controls.count()):
            box = controls.nth(i).bounding_box()
            assert box is not None and box["height"] >= 48 and box["width"] >= 48, (
                controls.nth(i).evaluate("e => e.outerHTML.slice(0, 80)"), box)
        name = "landscape-1024x768" if landscape else "portrait-768x1024"
        shoot(page, f"tablet-{name}")
        page.screenshot(path=str(ARTIFACTS / f"tablet-{name}-viewport.png"))
        if landscape and os.environ.get("NBA_UPDATE_DOCS_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS_SCREENSHOT))
        # the stock of every size opens with a tap (no hover-only control)
        toggle = page.locator("#offers .stock:not([hidden]) summary").first
        if toggle.count():
            toggle.tap()
            expect(page.locator("#offers .stock:not([hidden]) table").first).to_be_visible()
            expect(page.locator("#offers tr.mine").first).to_be_visible()


def test_unknown_customer(landscape):
    page = landscape
    assert lookup(page, "C9999999") == "unknown"
    expect(page.locator("#message")).to_contain_text("Customer not found")
    expect(page.locator("#message")).to_contain_text("C9999999")
    expect(page.locator("#customer")).to_be_hidden()
    expect(page.locator("#offers .offer")).to_have_count(0)
    shoot(page, "unknown-customer")


def test_a_walk_in_without_an_account_gets_the_offers_for_new_customers(landscape, server):
    page = landscape
    assert walk_in(page) == "offers"
    expect(page.locator("#c-value")).to_have_text("New customer")
    cards = page.locator("#offers .offer")
    expect(cards).to_have_count(2)
    expect(cards.first.locator(".name")).to_have_text("A gift with your first order")
    expect(cards.first.locator(".sentence")).not_to_be_empty()
    shoot(page, "walk-in")

    decision_id = page.locator("#offers").get_attribute("data-decision-id")
    cards.first.get_by_role("button", name="Accept").click()
    expect(page.locator("#recorded-list li").first).to_contain_text("recorded")
    status, body = call(f"{server}/v1/outcomes", {"decision_id": decision_id,
                                                  "offer_id": "first_purchase_gift",
                                                  "event": "accepted"})
    assert status == 200 and body["recorded"] is False  # the page recorded it already


def test_a_walk_in_registers_a_card_and_is_then_a_known_customer(browser, store_server):
    base, state_url = store_server
    with open_page(browser, base, LANDSCAPE, f"?store_id={STORE}") as page:
        app, form = page.locator("#app"), page.locator("#register-form")
        expect(form).to_be_hidden()
        walk_in(page)
        expect(form).to_be_visible()

        page.locator("#card-input").fill("7700 1234-5678")
        page.get_by_role("button", name="Register card").click()

        expect(page.locator("#c-id")).to_have_text("770012345678")
        expect(app).to_have_attribute("data-state", SETTLED)
        expect(form).to_be_hidden()
        shoot(page, "walk-in-registered")
        # the card is theirs now: registering it again is refused, said on the page
        page.get_by_role("button", name="Walk-in, no account").click()
        expect(form).to_be_visible()
        page.locator("#card-input").fill("770012345678")
        page.get_by_role("button", name="Register card").click()
        expect(page.locator("#register-error")).to_contain_text("already registered")
        # and a lookup by the card as printed finds them
        assert lookup(page, "7700-1234-5678") in ("offers", "no-offers", "holdout")
        expect(page.locator("#c-id")).to_have_text("770012345678")
    with open_store(state_url) as store:
        profile = store.profiles.get("770012345678")
    assert profile is not None
    assert profile["loyalty_card"] == "7700 1234-5678" and profile["channel"] == "store"


def test_in_store_mode_a_loaded_customer_is_found_by_id_or_by_card(browser, store_server, people):
    base, _ = store_server
    customer_id = people.plain[0]
    with open_page(browser, base, LANDSCAPE, f"?store_id={STORE}") as page:
        expect(page.locator('label[for="customer-ref"]')).to_have_text(
            "Customer id or card number")
        # the card as printed on it, from customers.parquet (not registered on this page)
        printed = card_of(customer_id)
        assert lookup(page, f"{printed[:4]} {printed[4:8]}-{printed[8:]}") in (
            "offers", "no-offers", "holdout")
        expect(page.locator("#c-id")).to_have_text(customer_id)
        expect(page.locator("#c-card")).to_have_text(printed)
        assert lookup(page, customer_id) in ("offers", "no-offers", "holdout")
        expect(page.locator("#c-card")).to_have_text(printed)
        assert lookup(page, "6001 9999 9999") == "unknown"
        expect(page.locator("#message")).to_contain_text("customer id or card number")


def test_holdout_customer_gets_no_offers(landscape, people):
    page = landscape
    assert lookup(page, people.holdout) == "holdout"
    expect(page.locator("#message")).to_contain_text("holdout")
    expect(page.locator("#customer")).to_be_visible()
    expect(page.locator("#offers .offer")).to_have_count(0)
    shoot(page, "holdout-customer")


def test_no_offer_worth_making_for_a_customer_without_consent(landscape, people):
    page = landscape
    assert lookup(page, people.not_contactable) == "no-offers"
    expect(page.locator("#message")).to_contain_text("No offer worth making")
    expect(page.locator("#message")).to_contain_text("withdrawn consent")
    expect(page.locator("#message-details")).to_be_hidden()
    expect(page.locator("#c-contact")).to_contain_text("No offers")
    expect(page.locator("#offers .offer")).to_have_count(0)
    shoot(page, "no-offer-no-consent")


def test_no_offer_worth_making_says_why_on_a_tap(landscape, people):
    page = landscape
    assert lookup(page, people.nothing) == "no-offers"
    expect(page.locator("#message")).to_contain_text("expected to make a difference")
    expect(page.locator("#message-list")).to_be_hidden()
    page.locator("#message-details summary").tap()
    expect(page.locator("#message-list li").first).to_be_visible()
    shoot(page, "no-offer-worth-making")


def test_service_not_ready_asks_for_the_key_then_says_starting(browser, unready_server):
    with open_page(browser, unready_server, PORTRAIT) as page:
        expect(page.locator("#banner")).to_contain_text("starting / not ready")
        expect(page.locator("#key-form")).to_be_visible()  # not development mode: key first
        page.locator("#key-input").fill("not-the-staff-key-0000")
        page.get_by_role("button", name="Save key").click()
        assert lookup(page, "C0000001") == "auth"
        expect(page.locator("#key-error")).to_contain_text("not accepted")
        page.locator("#key-input").fill(STAFF_KEY)
        page.get_by_role("button", name="Save key").click()
        expect(page.locator("#app")).to_have_attribute("data-state", "not-ready")
        expect(page.locator("#message")).to_contain_text("not ready")
        assert page.evaluate("sessionStorage.getItem('nba.staffKey')") == STAFF_KEY
        shoot(page, "service-not-ready")
