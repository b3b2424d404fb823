"""The live alert display: an HTTP page and API fed by the alerts on MQTT (issue 5)."""
