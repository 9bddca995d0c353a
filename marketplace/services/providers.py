"""Provider accounts: signup and the payout account step of onboarding."""

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from common.errors import ValidationFailed
from common.services import api_token_create, audit_log
from marketplace.countries import PAYOUT_CURRENCIES, country_normalize
from marketplace.models import Provider


def _signup_errors(  # noqa: C901 — to split into named steps
    *, username: str, password: str, email: str, company: str, contact_name: str, country: str, payout_currency: str
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not username:
        errors["username"] = ["Choose a username."]
    elif len(username) > 150:
        errors["username"] = ["Usernames are at most 150 characters."]
    else:
        try:
            UnicodeUsernameValidator()(username)
        except DjangoValidationError as exc:
            errors["username"] = list(exc.messages)
        else:
            if User.objects.filter(username__iexact=username).exists():
                errors["username"] = [f"The username {username!r} is already taken."]
    try:
        validate_email(email)
    except DjangoValidationError:
        errors["email"] = ["Enter a valid email address."]
    if not company.strip():
        errors["company"] = ["Enter your company name."]
    if not contact_name.strip():
        errors["contact_name"] = ["Enter a contact name."]
    if country_normalize(country) is None:
        errors["country"] = [f"{country!r} is not an ISO 3166-1 alpha-2 country code (for example DE, US, GB)."]
    if payout_currency.upper() not in PAYOUT_CURRENCIES:
        errors["payout_currency"] = [f"Payout currency must be one of {', '.join(PAYOUT_CURRENCIES)}."]
    try:
        validate_password(password, user=User(username=username, email=email))
    except DjangoValidationError as exc:
        errors["password"] = list(exc.messages)
    return errors


def provider_signup(
    *,
    username: str,
    password: str,
    email: str,
    company: str,
    contact_name: str,
    country: str,
    payout_currency: str = "USD",
) -> tuple[Provider, str]:
    """Create a user and its provider profile; returns the provider and a raw API token (shown once).

    Raises ValidationFailed (with per-field `details`) on bad input or a taken username; nothing is
    written in that case.
    """
    username = username.strip()
    email = email.strip()
    errors = _signup_errors(
        username=username,
        password=password,
        email=email,
        company=company,
        contact_name=contact_name,
        country=country,
        payout_currency=payout_currency,
    )
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationFailed(first, details=errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
            provider = Provider.objects.create(
                user=user,
                company=company.strip(),
                contact_name=contact_name.strip(),
                country=country_normalize(country) or "",
                payout_currency=payout_currency.upper(),
            )
            _, raw_token = api_token_create(user=user, name="signup")
            audit_log(actor=user, action="provider.signup", target=f"provider:{provider.pk}")
    except IntegrityError as exc:  # a concurrent signup took the username between the check and the insert
        message = f"The username {username!r} is already taken."
        raise ValidationFailed(message, details={"username": [message]}) from exc
    return provider, raw_token


def provider_payout_account_connect(*, provider: Provider) -> Provider:
    """Connect the provider's payout account.

    With the local gateway (no STRIPE_SECRET_KEY) the account is ready at once. The billing engineer
    extends this for Stripe Connect: create the Express account, store `stripe_account_id`, return the
    onboarding link, and set `payout_account_ready` from the `account.updated` webhook.
    """
    if settings.STRIPE_SECRET_KEY:
        raise ValidationFailed(
            "Stripe Connect onboarding is not available yet; contact support to set up payouts.",
            code="payout_onboarding_unavailable",
        )
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        if not locked.payout_account_ready:
            locked.payout_account_ready = True
            locked.save(update_fields=["payout_account_ready"])
            audit_log(actor=locked.user, action="provider.payout_account_connect", target=f"provider:{locked.pk}")
    provider.refresh_from_db(fields=["payout_account_ready"])
    return provider
