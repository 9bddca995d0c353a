import pytest

from tests.browser.conftest import login
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_home_and_login_in_chromium(page) -> None:
    UserFactory(username="browseruser")
    page.goto("/")
    assert "RigShift" in page.title()
    login(page, username="browseruser", password=PASSWORD)
    page.wait_for_selector("text=Log out browseruser")
