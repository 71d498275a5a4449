from django import forms

from links.models import Link


class LinkFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    tag = forms.CharField(required=False, max_length=40)
    show = forms.ChoiceField(
        required=False, choices=[("", "Active"), ("archived", "Archived"), ("all", "All")], label="Show"
    )


class LinkForm(forms.ModelForm):
    """Create and edit. Validation itself lives on the model and in links.services."""

    slug = forms.CharField(
        required=False, max_length=64, help_text="Optional: letters, digits, '-' or '_'. Leave empty for a random id."
    )
    tags = forms.CharField(required=False, max_length=400, help_text="Comma-separated, for example: youtube, launch")
    expires_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Optional, in UTC.",
    )

    class Meta:
        model = Link
        fields = [
            "url", "title", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
            "pass_click_id", "is_active", "expires_at", "expired_url",
        ]
        widgets = {"url": forms.URLInput(attrs={"placeholder": "https://your-site.example/offer"})}
        labels = {
            "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
            "utm_term": "UTM term", "utm_content": "UTM content", "pass_click_id": "Pass the click id",
        }

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["slug"]
            self.initial.setdefault("tags", ", ".join(tag.name for tag in self.instance.tags.all()))
        else:
            del self.fields["is_active"]

    def _post_clean(self):
        # Model validation runs in the service, which also owns uniqueness and tags.
        pass

    def tag_names(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data.get("tags", "").split(",") if name.strip()]
