"""The station API served to the enrollment front-end (docs/station-api.md)."""
