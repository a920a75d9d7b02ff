"""The OIDC mode in a real browser: headless Chromium logs in through the provider's form.

The same site as test_mlflow_oidc.py (its ``oidc_site`` fixture: mlflow-oidc-auth run from the
role's templates behind the role's nginx site, oidc-provider-mock as the provider). Debian's
chromium and chromium-driver (scripts/host-deps), driven by Selenium, open the public site:

- alice (groups mlflow, ml-team) is shown mlflow-oidc-auth's sign-in page, whose button leads to
  the provider's login form; she signs in there, comes back and sees MLflow's UI list the
  experiment created for the test beforehand through the API;
- otto (outsiders) signs in at the same form and is refused: the browser shows the refusal, MLflow's
  UI sends it back to the sign-in page and the API refuses its cookies.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from integration.test_mlflow_oidc import ALICE, OTTO, oidc_site  # noqa: F401 - fixture
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from support.oidc import browserless_login

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The machine may be loaded: a page of MLflow's UI bundle can take 30 s and more.
PAGE_TIMEOUT = 120
WAIT = 120


@contextlib.contextmanager
def _browser():
    """A fresh headless Chromium (no cookies, no proxy) and its driver, quit at the end."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    # Both paths given: Selenium Manager (which would download a browser) never runs.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver) -> WebDriverWait:
    """A wait that looks again when React re-renders an element between finding and reading it."""
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))


def _click(driver, locator) -> None:
    """Click the element at `locator` once it is clickable, finding it again if a re-render replaced it."""

    def clicked(d) -> bool:
        element = ec.element_to_be_clickable(locator)(d)
        if not element:
            return False
        element.click()
        return True

    _wait(driver).until(clicked)


def _seen(driver) -> str:
    """What the browser shows, for an assertion's message."""
    try:
        text = driver.find_element(By.TAG_NAME, "body").text
    except Exception:  # only for a message
        text = ""
    return f"at {driver.current_url}: {text[:1500]!r}"


LOGIN = (By.XPATH, "//button[normalize-space()='Login with OIDC']")


def _sign_in_page(driver) -> None:
    """Wait for mlflow-oidc-auth's sign-in page (its login button), where it sends a browser without a session."""
    try:
        _wait(driver).until(ec.element_to_be_clickable(LOGIN))
    except TimeoutException:
        pytest.fail(f"the site did not show its sign-in page {_seen(driver)}")
    assert urlsplit(driver.current_url).path.startswith("/oidc/ui"), _seen(driver)


def _sign_in_at_the_provider(driver, url: str, provider, sub: str) -> None:
    """Open the public site, follow it to the provider's form and sign in there as `sub`."""
    driver.get(f"{url}/")
    _sign_in_page(driver)
    _click(driver, LOGIN)
    try:
        _wait(driver).until(ec.url_contains(f"{provider.issuer}/oauth2/authorize"))
        _wait(driver).until(ec.visibility_of_element_located((By.NAME, "sub")))
    except TimeoutException:
        pytest.fail(f"the sign-in page did not send the browser to the provider's login form {_seen(driver)}")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Authorize Client", _seen(driver)
    assert provider.client_id in driver.find_element(By.TAG_NAME, "body").text, _seen(driver)
    driver.find_element(By.NAME, "sub").send_keys(sub)
    _click(driver, (By.XPATH, "//button[@type='submit' and normalize-space()='Authorize']"))
    # Back from the provider, on the public site.
    site = urlsplit(url).netloc
    try:
        _wait(driver).until(lambda d: urlsplit(d.current_url).netloc == site)
    except TimeoutException:
        pytest.fail(f"the provider did not send the browser back to the site {_seen(driver)}")


def test_allowed_user_logs_in_through_the_provider_and_sees_the_experiments(oidc_site):  # noqa: F811
    url, provider, _ = oidc_site
    # An experiment created beforehand through the API, as alice (ml-team: EDIT).
    session, answer = browserless_login(url, ALICE)
    assert answer.status_code == 200, (answer.status_code, answer.url)
    name = f"browser-{uuid.uuid4().hex[:12]}"
    created = session.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=30)
    assert created.status_code == 200, (created.status_code, created.text[:300])

    with _browser() as driver:
        _sign_in_at_the_provider(driver, url, provider, ALICE)
        driver.get(f"{url}/#/experiments")
        try:
            _wait(driver).until(ec.visibility_of_element_located((By.XPATH, f"//a[normalize-space()='{name}']")))
        except TimeoutException:
            pytest.fail(f"MLflow's UI did not list experiment {name} {_seen(driver)}")
        # The session the UI runs on is alice's, set by the login through the provider.
        cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
    assert cookies, "the login left no session cookie in the browser"
    current = requests.get(f"{url}/api/2.0/mlflow/users/current", cookies=cookies, timeout=30)
    assert current.status_code == 200 and ALICE in current.text, (current.status_code, current.text[:300])


def test_user_outside_the_allowed_groups_is_refused_in_the_browser(oidc_site):  # noqa: F811
    url, provider, _ = oidc_site
    with _browser() as driver:
        _sign_in_at_the_provider(driver, url, provider, OTTO)
        try:
            _wait(driver).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "User is not allowed to login"))
        except TimeoutException:
            pytest.fail(f"the browser was not shown the refusal {_seen(driver)}")
        # Nothing opened for otto: MLflow's UI still sends the browser to the sign-in page.
        driver.get(f"{url}/#/experiments")
        _sign_in_page(driver)
        cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
    current = requests.get(f"{url}/api/2.0/mlflow/users/current", cookies=cookies, timeout=30)
    assert current.status_code == 401, (current.status_code, current.text[:300])
