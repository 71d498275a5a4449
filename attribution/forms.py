from django import forms

from attribution.models import AttributionModel, AttributionSettings, Conversion

PRESET_CHOICES = [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"), ("custom", "Custom")]


class PeriodForm(forms.Form):
    range = forms.ChoiceField(choices=PRESET_CHOICES, required=False, initial="30d", label="Period")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")
    model = forms.ChoiceField(choices=AttributionModel.choices, required=False, label="Attribution model")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("range") == "custom" and not (cleaned.get("start") and cleaned.get("end")):
            raise forms.ValidationError("A custom period needs a start and an end date.")
        return cleaned


class ConversionFilterForm(PeriodForm):
    status = forms.ChoiceField(choices=[("", "Any status"), *Conversion.Status.choices], required=False)
    source = forms.ChoiceField(choices=[("", "Any source"), *Conversion.Source.choices], required=False)
    event = forms.CharField(required=False, max_length=64)
    link = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class AttributionSettingsForm(forms.ModelForm):
    class Meta:
        model = AttributionSettings
        fields = ["default_model", "window_days", "half_life_days", "respect_do_not_track"]
        labels = {"window_days": "Attribution window (days)", "half_life_days": "Time-decay half-life (days)"}

    def clean_window_days(self):
        value = self.cleaned_data["window_days"]
        if not 1 <= value <= 90:
            raise forms.ValidationError("Choose a window from 1 to 90 days.")
        return value

    def clean_half_life_days(self):
        value = self.cleaned_data["half_life_days"]
        if value <= 0 or value > 365:
            raise forms.ValidationError("Choose a half-life above 0 and up to 365 days.")
        return value

