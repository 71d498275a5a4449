from django import forms

from allumi.integrations.models import EventType


class EndpointCreateForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL", max_length=2048, widget=forms.URLInput(attrs={"placeholder": "https://crm.example.com/hooks/allumi"}),
        help_text="Allumi POSTs signed JSON events here. It must be a public http(s) address.",
    )
    description = forms.CharField(required=False, max_length=200, help_text="Optional: what listens here, for you.")
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple, initial=EventType.values,
        help_text="The events this endpoint receives.",
    )
