from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, UserCreationForm, _unicode_ci_compare

from allumi.accounts.emails import email_send
from allumi.accounts.models import ApiKey, Creator, EmailLog


class SignUpForm(forms.Form):
    name = forms.CharField(max_length=120, required=False, label="Your name")
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if Creator.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists. Sign in instead.")
        return email

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            candidate = Creator(email=cleaned.get("email", ""), name=cleaned.get("name", ""))
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class LoginForm(AuthenticationForm):
    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}))

    error_messages = {
        **AuthenticationForm.error_messages,
        "unconfirmed": "Confirm your email first: we have sent you a new confirmation link.",
    }

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.email_confirmed:
            from allumi.accounts.services import email_confirmation_send

            email_confirmation_send(creator=user)
            raise forms.ValidationError(self.error_messages["unconfirmed"], code="unconfirmed")


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Creator
        fields = ["name", "currency"]
        help_texts = {"currency": "ISO 4217 code used when a conversion names none, for example USD or EUR."}

    def clean_currency(self):
        currency = self.cleaned_data["currency"].strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError("Use a three-letter ISO 4217 code such as USD.")
        return currency


class EmailPreferencesForm(forms.ModelForm):
    class Meta:
        model = Creator
        fields = ["conversion_alerts", "weekly_report", "weekly_report_weekday"]
        labels = {"conversion_alerts": "Email me when sales come in", "weekly_report": "Email me a weekly report"}
        help_texts = {"weekly_report_weekday": "The report arrives that morning (08:00 UTC) and covers the seven days before."}


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=80)
    kind = forms.ChoiceField(choices=ApiKey.Kind.choices)


class CreatorPasswordResetForm(PasswordResetForm):
    """Also for creators provisioned without a password (create_creator without --password):
    the reset link is how they choose their first one."""

    def get_users(self, email):
        for creator in Creator.objects.filter(email__iexact=email.strip(), is_active=True):
            # Django's own guard against Unicode case-folding lookalikes of an address.
            if _unicode_ci_compare(email.strip(), creator.email):
                yield creator

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email, html_email_template_name=None):
        """Queue the reset email through Allumi's email log and Celery instead of sending it in the request."""
        email_send(
            to=to_email, template="accounts/email/password_reset", context=context,
            kind=EmailLog.Kind.PASSWORD_RESET, creator=context.get("user"),
        )


class CreatorAdminCreationForm(UserCreationForm):
    class Meta:
        model = Creator
        fields = ["email"]

    def clean_email(self):
        return self.cleaned_data["email"].strip().lower()
